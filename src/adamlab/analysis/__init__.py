"""Analysis of stores."""
