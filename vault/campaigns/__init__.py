"""Campaigns: planned outbound contacts, their audiences, bookings in the customers'
baskets by priority, and forecasts that only ever show counts (issue 21)."""
