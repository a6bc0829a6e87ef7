"""Keys and ciphers: the master key and its password wrapping (Argon2id), per-session AEAD
(AES-256-GCM with HKDF-derived session keys and counter nonces), and keyed BLAKE3 chunk ids.

Everything that touches secret bytes lives here; callers see seal/open and id functions only.
"""
