package imap

import (
	"bytes"
	"errors"
	"strconv"
	"sync/atomic"
	"time"
)

// monthNames are the English month abbreviations of RFC 3501 date-month.
// They never depend on the locale.
var monthNames = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// Internaldate2Time is imaplib's Internaldate2tuple. It looks for
//
//	INTERNALDATE "DD-Mon-YYYY HH:MM:SS +HHMM"
//
// anywhere in resp (the day may be padded with a space) and returns that
// instant in a fixed zone with the offset the server sent (UTC for +0000).
// Like imaplib's greedy pattern it uses the last such occurrence. It reports
// false when there is none, or when the date is not valid (an unknown month,
// day 31 of April, minute 61, ...); it never panics.
func Internaldate2Time(resp []byte) (time.Time, bool) {
	const key = `INTERNALDATE "`
	end := len(resp)
	for {
		i := bytes.LastIndex(resp[:end], []byte(key))
		if i < 0 {
			return time.Time{}, false
		}
		v := resp[i+len(key):]
		if internaldateShape(v) {
			t, err := parseDateTime(v[:26])
			return t, err == nil
		}
		end = i
	}
}

// internaldateShape reports whether b starts with the exact shape imaplib's
// InternalDate pattern accepts: `[ 0123][0-9]-[A-Z][a-z][a-z]-[0-9]{4}
// [0-9]{2}:[0-9]{2}:[0-9]{2} [-+][0-9]{4}"`.
func internaldateShape(b []byte) bool {
	if len(b) < 27 || b[26] != '"' {
		return false
	}
	const shape = "dd-Mon-dddd dd:dd:dd sdddd"
	for i := 0; i < len(shape); i++ {
		c := b[i]
		switch shape[i] {
		case 'd':
			if i == 0 {
				if c != ' ' && (c < '0' || c > '3') {
					return false
				}
			} else if !isDigit(c) {
				return false
			}
		case 'M':
			if c < 'A' || c > 'Z' {
				return false
			}
		case 'o', 'n':
			if c < 'a' || c > 'z' {
				return false
			}
		case 's':
			if c != '+' && c != '-' {
				return false
			}
		default:
			if c != shape[i] {
				return false
			}
		}
	}
	return true
}

// Time2Internaldate is imaplib's Time2Internaldate for a time.Time: it
// returns t as an IMAP date-time, double quotes included, for example
//
//	"18-May-2033 05:33:20 +0200"
//
// The offset is that of t's location at t (seconds are dropped), and the
// month names are always English.
func Time2Internaldate(t time.Time) string {
	return string(appendInternaldate(make([]byte, 0, 28), t))
}

// appendInternaldate appends the quoted date-time of t to b.
func appendInternaldate(b []byte, t time.Time) []byte {
	year, month, day := t.Date()
	hour, min, sec := t.Clock()
	_, off := t.Zone()
	b = append(b, '"')
	b = append2(b, day)
	b = append(b, '-')
	b = append(b, monthNames[month-1]...)
	b = append(b, '-')
	if year < 0 {
		b = append(b, '-')
		year = -year
	}
	for p := 1000; p > 1 && year < p; p /= 10 {
		b = append(b, '0')
	}
	b = strconv.AppendInt(b, int64(year), 10)
	b = append(b, ' ')
	b = append2(b, hour)
	b = append(b, ':')
	b = append2(b, min)
	b = append(b, ':')
	b = append2(b, sec)
	b = append(b, ' ')
	if off < 0 {
		b = append(b, '-')
		off = -off
	} else {
		b = append(b, '+')
	}
	off /= 60
	b = append2(b, off/60)
	b = append2(b, off%60)
	return append(b, '"')
}

// append2 appends n (0 <= n < 100) as two digits.
func append2(b []byte, n int) []byte {
	return append(b, byte('0'+n/10%10), byte('0'+n%10))
}

// ParseInternaldate parses the bare IMAP date-time form
// "DD-Mon-YYYY HH:MM:SS +HHMM" (no quotes). The day may be one digit,
// space-padded or zero-padded; the month name is matched without regard to
// case. The result is in a fixed zone with the given offset (UTC for
// +0000).
func ParseInternaldate(s string) (time.Time, error) {
	t, err := parseDateTime([]byte(s))
	if err != nil {
		return time.Time{}, errors.New("imap: parse date-time " + strconv.Quote(s) + ": " + err.Error())
	}
	return t, nil
}

// parseDateTime parses b, which must be exactly one date-time
// "DD-Mon-YYYY HH:MM:SS +HHMM" (the day zero-padded, space-padded or one
// digit) and nothing else. It does not allocate, except for a fixed zone
// with an unusual offset.
func parseDateTime(b []byte) (time.Time, error) {
	var day int
	switch {
	case len(b) == 26 && b[0] == ' ' && isDigit(b[1]):
		day = int(b[1] - '0')
	case len(b) == 26:
		d, ok := digits2(b)
		if !ok {
			return time.Time{}, errDateTime
		}
		day = d
	case len(b) == 25 && isDigit(b[0]):
		day = int(b[0] - '0')
		b = b[1:]
		goto rest
	default:
		return time.Time{}, errDateTime
	}
	b = b[2:]
rest:
	// b is "-Mon-YYYY HH:MM:SS +HHMM".
	if b[0] != '-' || b[4] != '-' || b[9] != ' ' || b[12] != ':' || b[15] != ':' || b[18] != ' ' {
		return time.Time{}, errDateTime
	}
	month := lookupMonth(b[1:4])
	if month == 0 {
		return time.Time{}, errors.New("unknown month " + strconv.Quote(string(b[1:4])))
	}
	y1, ok1 := digits2(b[5:])
	y2, ok2 := digits2(b[7:])
	hour, ok3 := digits2(b[10:])
	min, ok4 := digits2(b[13:])
	sec, ok5 := digits2(b[16:])
	zh, ok6 := digits2(b[20:])
	zm, ok7 := digits2(b[22:])
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || !ok7 || (b[19] != '+' && b[19] != '-') {
		return time.Time{}, errDateTime
	}
	year := y1*100 + y2
	if day < 1 || day > daysIn(month, year) || hour > 23 || min > 59 || sec > 60 || zh > 23 || zm > 59 {
		return time.Time{}, errors.New("date or time out of range")
	}
	off := (zh*60 + zm) * 60
	if b[19] == '-' {
		off = -off
	}
	return time.Date(year, month, day, hour, min, sec, 0, fixedZone(off)), nil
}

var errDateTime = errors.New(`not of the form "DD-Mon-YYYY HH:MM:SS +HHMM"`)

// lookupMonth returns the month named by the three letters b, matched
// without regard to case, or 0.
func lookupMonth(b []byte) time.Month {
	if len(b) != 3 {
		return 0
	}
	c0, c1, c2 := b[0]|0x20, b[1]|0x20, b[2]|0x20
	for i, name := range monthNames {
		if c0 == name[0]|0x20 && c1 == name[1] && c2 == name[2] {
			return time.Month(i + 1)
		}
	}
	return 0
}

// daysIn returns the number of days of month m in year y.
func daysIn(m time.Month, y int) int {
	switch m {
	case time.February:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

// digits2 parses two ASCII digits.
func digits2(b []byte) (int, bool) {
	if !isDigit(b[0]) || !isDigit(b[1]) {
		return 0, false
	}
	return int(b[0]-'0')*10 + int(b[1]-'0'), true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// zoneCache holds the fixed zones for offsets that are whole quarter hours
// within a day of UTC, so that parsing many dates does not allocate a
// *time.Location each.
var zoneCache [2*24*4 + 1]atomic.Pointer[time.Location]

// fixedZone returns a fixed zone with the offset off (in seconds), or UTC
// when off is zero.
func fixedZone(off int) *time.Location {
	if off == 0 {
		return time.UTC
	}
	if off%(15*60) != 0 || off < -24*3600 || off > 24*3600 {
		return time.FixedZone("", off)
	}
	slot := &zoneCache[off/(15*60)+24*4]
	if loc := slot.Load(); loc != nil {
		return loc
	}
	loc := time.FixedZone("", off)
	slot.Store(loc)
	return loc
}
