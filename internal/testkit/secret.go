package testkit

import "strings"

// SecretLike turns a fuzzer's string into something shaped like a key or a
// password: at least 16 of A-Z a-z 0-9 _ -, which no URL escapes and no
// trimming, colon or whitespace split of a line or setting can cut.
func SecretLike(raw string) string {
	s := strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '_', r == '-':
			return r
		}
		return -1
	}, raw)
	if len(s) < 16 {
		s += "Zq7Xk9Lm2Pw4Rt8v"[len(s):]
	}
	return s
}
