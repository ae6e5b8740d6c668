"""Stage 7: pause until a human approves or rejects deployment, or the request expires."""
