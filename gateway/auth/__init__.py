"""Connect-time authentication: Phoenix.Token, JWT, the anonymous policy and the origin check."""
