package messages

import "time"

// SetNow replaces the clock of s, for tests that pin sent_at.
func SetNow(s *Service, now func() time.Time) { s.now = now }
