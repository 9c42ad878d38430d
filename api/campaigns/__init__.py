"""Routes of campaigns, their bookings and forecasts (issue 21)."""
