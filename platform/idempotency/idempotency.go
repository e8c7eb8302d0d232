// Package idempotency is the platform's one rule for the idempotency keys
// clients choose (the Idempotency-Key header of docs/api.md). The gateway
// checks it at the edge and every service that stores a key checks it
// again, so a key that one part accepts no other part refuses or, worse,
// fails on: a byte that is not UTF-8 cannot travel in a protobuf string,
// and a control character has no place in a log line or a Redis field
// name.
package idempotency

import "fmt"

// MaxKeyLen bounds a key's length in bytes (and so in characters, since
// every allowed character is one byte).
const MaxKeyLen = 128

// CheckKey accepts 1..MaxKeyLen printable ASCII characters (space to
// tilde) and explains anything else.
func CheckKey(key string) error {
	if len(key) == 0 || len(key) > MaxKeyLen {
		return fmt.Errorf("idempotency key must have 1 to %d characters, got %d", MaxKeyLen, len(key))
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("idempotency key has a character that is not printable ASCII at byte %d", i)
		}
	}
	return nil
}
