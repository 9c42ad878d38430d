// A real OpenID provider for Tresor's single sign-on end-to-end test (oidc-provider).
//
// Started by tests/support/oidc.py as `node provider.mjs` with PORT, CLIENT_ID,
// CLIENT_SECRET and REDIRECT_URI in the environment; prints "ready <issuer>" once it listens.
// Sign-in through oidc-provider's development interactions (any login and password); the
// account "dpo.user" carries groups ["dpo"], every other login groups ["staff"]. The
// `groups` scope puts the claim into the ID token (conformIdTokenClaims off).
import Provider from "oidc-provider";

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: process.env.CLIENT_ID,
      client_secret: process.env.CLIENT_SECRET,
      redirect_uris: [process.env.REDIRECT_URI],
      response_types: ["code"],
      grant_types: ["authorization_code"],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  claims: { openid: ["sub"], groups: ["groups"] },
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  cookies: { keys: ["tresor-test-only-cookie-key"] },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, groups: id === "dpo.user" ? ["dpo"] : ["staff"] };
      },
    };
  },
});

provider.listen(port, "127.0.0.1", () => {
  console.log(`ready ${issuer}`);
});
