package imaptest

import "time"

// Ports of the command handlers of CPython's test_imaplib.py. Use them in
// Config.Commands together with the capabilities CPython gives them
// ("IDLE", or "LOGINDISABLED AUTH=CRAM-MD5").

// IdleDenied answers IDLE with "TAG NO IDLE is not allowed at this time"
// and no continuation (IdleCmdDenyHandler).
func IdleDenied(s *Session, tag, args string) {
	_ = s.Send(tag + " NO IDLE is not allowed at this time")
}

// IdleFetchLiteral is the literal in the FETCH response sent by IdleIter.
const IdleFetchLiteral = "Date: Fri, 06 Dec 2024 06:00:00 +0000\r\n\r\n"

// IdleIter returns the IDLE command of IdleCmdHandler. It sends, one
// write each: "* 0 EXISTS", "+ idling", "* 2 EXISTS",
// "* 1 FETCH (BODY[HEADER.FIELDS (DATE)] {41}", the 41 bytes of
// IdleFetchLiteral, ")", "* 3 EXISTS"; then after pause (CPython 3.14: 1 s)
// "* 1 RECENT". It then reads a line: "DONE" gets "* 9 RECENT" and
// "TAG OK Idle completed", anything else "TAG BAD Expected DONE".
func IdleIter(pause time.Duration) CommandFunc {
	return func(s *Session, tag, _ string) {
		for _, b := range []string{
			"* 0 EXISTS\r\n",
			"+ idling\r\n",
			"* 2 EXISTS\r\n",
			"* 1 FETCH (BODY[HEADER.FIELDS (DATE)] {41}\r\n",
			IdleFetchLiteral,
			")\r\n",
			"* 3 EXISTS\r\n",
		} {
			if s.Write([]byte(b)) != nil {
				return
			}
		}
		s.Sleep(pause)
		if s.Send("* 1 RECENT") != nil {
			return
		}
		if line, err := s.ReadLine(); err != nil {
			return
		} else if line == "DONE" {
			_ = s.Send("* 9 RECENT", tag+" OK Idle completed")
		} else {
			_ = s.Send(tag + " BAD Expected DONE")
		}
	}
}

// IdleDelayedPacket returns the IDLE command of
// IdleCmdDelayedPacketHandler: "+ idling", then the line "* 1 EXISTS" in
// three writes "* 1 EX", "IS" (after gap1) and "TS\r\n" (after gap2)
// (CPython 3.14: 0.2 s and 1 s). It then expects "DONE" and answers
// "TAG OK Idle completed", or "TAG BAD Expected DONE".
func IdleDelayedPacket(gap1, gap2 time.Duration) CommandFunc {
	return func(s *Session, tag, _ string) {
		if s.Send("+ idling") != nil || s.Write([]byte("* 1 EX")) != nil {
			return
		}
		s.Sleep(gap1)
		if s.Write([]byte("IS")) != nil {
			return
		}
		s.Sleep(gap2)
		if s.Write([]byte("TS\r\n")) != nil {
			return
		}
		if line, err := s.ReadLine(); err != nil {
			return
		} else if line == "DONE" {
			_ = s.Send(tag + " OK Idle completed")
		} else {
			_ = s.Send(tag + " BAD Expected DONE")
		}
	}
}

// CRAM-MD5 values of RFC 2195 section 2, as used by AuthCRAMMD5: the
// server challenge, and the answer for user "tim", password
// "tanstaaftanstaaf" (both base64).
const (
	CRAMMD5Challenge = "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ="
	CRAMMD5Response  = "dGltIGYxY2E2YmU0NjRiOWVmYTFjY2E2ZmZkNmNmMmQ5ZjMy"
)

// AuthCRAMMD5 is the AUTHENTICATE command of AuthHandler_CRAM_MD5: it
// sends "+ " + CRAMMD5Challenge, reads one line, and answers
// "TAG OK CRAM-MD5 successful" (and SetUser("tim")) if it is
// CRAMMD5Response, else "TAG NO No access".
func AuthCRAMMD5(s *Session, tag, args string) {
	if s.Send("+ "+CRAMMD5Challenge) != nil {
		return
	}
	line, err := s.ReadLine()
	if err != nil {
		return
	}
	if line == CRAMMD5Response {
		s.SetUser("tim")
		_ = s.Send(tag + " OK CRAM-MD5 successful")
	} else {
		_ = s.Send(tag + " NO No access")
	}
}
