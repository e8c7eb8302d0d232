package redis

// MaxUserPending is how many in-flight orders of one user a list reads.
const MaxUserPending = maxUserPending
