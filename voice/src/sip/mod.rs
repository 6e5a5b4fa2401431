//! Signalling: the SIP endpoint, digest authentication, the registrar, trunks.
