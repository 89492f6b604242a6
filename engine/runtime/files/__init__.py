"""Files: the blob store, sniffing what a file is, and attachments on records."""
