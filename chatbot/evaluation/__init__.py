"""Compare backends on held-out questions and chats: quality, hand-overs, latency, tokens, cost."""
