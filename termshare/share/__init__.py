"""`termshare share`: a PTY mirrored in the user's terminal and streamed, encrypted, to a relay."""
