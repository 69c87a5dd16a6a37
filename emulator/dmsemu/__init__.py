"""Local AWS Database Migration Service endpoint used by the lua-dms tests and demo."""
