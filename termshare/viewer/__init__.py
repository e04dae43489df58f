"""`termshare join`: a viewer in the user's own terminal, or a decrypted byte stream on a pipe."""
