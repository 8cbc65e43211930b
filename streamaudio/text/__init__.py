"""Text: the LLM client and its content cache, table providers (instruction banks, policy tables), event curation, and a local OpenAI-compatible dev server."""
