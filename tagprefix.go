package imap

// Int2AP is imaplib's Int2AP: it writes num in base 16 with the letters
// A to P as digits ('A' is 0, 'P' is 15), most significant first. Int2AP(0)
// is empty. imaplib uses it for the random four-letter tag prefix.
func Int2AP(num uint64) []byte {
	var buf [16]byte
	i := len(buf)
	for num != 0 {
		i--
		buf[i] = 'A' + byte(num&15)
		num >>= 4
	}
	return append([]byte(nil), buf[i:]...)
}
