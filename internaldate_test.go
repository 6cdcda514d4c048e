package imap

import (
	"strings"
	"testing"
	"time"
)

// TestInternaldate2Time ports CPython's test_Internaldate2tuple: the same
// instant written in three zones.
func TestInternaldate2Time(t *testing.T) {
	want := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, resp := range []string{
		`25 (INTERNALDATE "01-Jan-2000 00:00:00 +0000")`,
		`25 (INTERNALDATE "01-Jan-2000 11:30:00 +1130")`,
		`25 (INTERNALDATE "31-Dec-1999 12:30:00 -1130")`,
	} {
		got, ok := Internaldate2Time([]byte(resp))
		if !ok || !got.Equal(want) {
			t.Errorf("Internaldate2Time(%q) = %v, %v; want %v, true", resp, got, ok, want)
		}
	}
}

// TestInternaldate2TimeIssue10941 ports CPython's regression test for
// issue 10941: around a DST change in the local zone, two different UTC
// times must not collapse into one.
func TestInternaldate2TimeIssue10941(t *testing.T) {
	loc, err := time.LoadLocation("MST7MDT")
	if err != nil {
		t.Skipf("no time zone data: %v", err)
	}
	a, ok1 := Internaldate2Time([]byte(`25 (INTERNALDATE "02-Apr-2000 02:30:00 +0000")`))
	b, ok2 := Internaldate2Time([]byte(`25 (INTERNALDATE "02-Apr-2000 03:30:00 +0000")`))
	if !ok1 || !ok2 {
		t.Fatal("Internaldate2Time failed")
	}
	if a.Equal(b) {
		t.Errorf("instants are equal: %v, %v", a, b)
	}
	if la, lb := a.In(loc), b.In(loc); la.Format(time.DateTime) == lb.Format(time.DateTime) {
		t.Errorf("local times are equal: %v, %v", la, lb)
	}
}

func TestInternaldate2TimeTable(t *testing.T) {
	tests := []struct {
		resp string
		want string // RFC 3339, or "" for no result
	}{
		{`1 (INTERNALDATE " 2-Feb-2001 03:04:05 -0700")`, "2001-02-02T03:04:05-07:00"},
		{`1 (INTERNALDATE "02-Feb-2001 03:04:05 +0530")`, "2001-02-02T03:04:05+05:30"},
		{`1 (UID 3 INTERNALDATE "29-Feb-2000 23:59:59 +0000" FLAGS ())`, "2000-02-29T23:59:59Z"},
		{`INTERNALDATE "01-Jan-2000 00:00:00 +0000" INTERNALDATE "02-Jan-2000 00:00:00 +0000"`, "2000-01-02T00:00:00Z"},
		// The last well-formed occurrence wins.
		{`INTERNALDATE "02-Jan-2000 00:00:00 +0000" INTERNALDATE "bogus"`, "2000-01-02T00:00:00Z"},
		{`1 (FLAGS (\Seen))`, ""},
		{``, ""},
		{`INTERNALDATE "01-Foo-2000 00:00:00 +0000"`, ""}, // unknown month
		{`INTERNALDATE "01-JAN-2000 00:00:00 +0000"`, ""}, // imaplib's shape wants "Jan"
		{`INTERNALDATE "31-Apr-2000 00:00:00 +0000"`, ""}, // no such day
		{`INTERNALDATE "29-Feb-1900 00:00:00 +0000"`, ""}, // not a leap year
		{`INTERNALDATE "00-Jan-2000 00:00:00 +0000"`, ""}, // day zero
		{`INTERNALDATE "01-Jan-2000 24:00:00 +0000"`, ""}, // hour
		{`INTERNALDATE "01-Jan-2000 00:60:00 +0000"`, ""}, // minute
		{`INTERNALDATE "01-Jan-2000 00:00:00 +0060"`, ""}, // zone minutes
		{`INTERNALDATE "01-Jan-2000 00:00:00 0000"`, ""},  // no sign
		{`INTERNALDATE "01-Jan-2000 00:00:00 +0000`, ""},  // no closing quote
		{`INTERNALDATE "41-Jan-2000 00:00:00 +0000"`, ""}, // day tens
		{`INTERNALDATE "1-Jan-2000 00:00:00 +0000"`, ""},  // imaplib wants two characters
		{`INTERNALDATE 01-Jan-2000 00:00:00 +0000`, ""},   // unquoted
		{`INTERNALDATE "01-Jan-2000 00:00:00 +0000"`, "2000-01-01T00:00:00Z"},
	}
	for _, tt := range tests {
		got, ok := Internaldate2Time([]byte(tt.resp))
		if tt.want == "" {
			if ok {
				t.Errorf("Internaldate2Time(%q) = %v, true; want false", tt.resp, got)
			}
			continue
		}
		if !ok || got.Format(time.RFC3339) != tt.want {
			t.Errorf("Internaldate2Time(%q) = %v, %v; want %s", tt.resp, got.Format(time.RFC3339), ok, tt.want)
		}
	}
}

func TestInternaldate2TimeZone(t *testing.T) {
	got, ok := Internaldate2Time([]byte(`INTERNALDATE "17-Jul-1996 02:44:25 -0700"`))
	if !ok {
		t.Fatal("no result")
	}
	if _, off := got.Zone(); off != -7*3600 {
		t.Errorf("offset = %d, want %d", off, -7*3600)
	}
	if got.Hour() != 2 || got.Minute() != 44 {
		t.Errorf("wall clock = %v, want 02:44 in the sender's zone", got)
	}
}

// TestTime2Internaldate ports CPython's test_Time2Internaldate: epoch
// 2,000,000,000 in a +02:00 zone, whatever the locale.
func TestTime2Internaldate(t *testing.T) {
	t.Setenv("LC_ALL", "de_DE.UTF-8")
	t.Setenv("LANG", "fr_FR.UTF-8")
	const want = `"18-May-2033 05:33:20 +0200"`
	zones := []*time.Location{time.FixedZone("", 2*3600), time.FixedZone("CEST", 2*3600)}
	if berlin, err := time.LoadLocation("Europe/Berlin"); err == nil {
		zones = append(zones, berlin) // DST in May: +0200
	}
	for _, loc := range zones {
		got := Time2Internaldate(time.Unix(2_000_000_000, 0).In(loc))
		if got != want {
			t.Errorf("Time2Internaldate in %v = %s, want %s", loc, got, want)
		}
	}
	// test_that_Time2Internaldate_returns_a_result: the local zone works.
	if got := Time2Internaldate(time.Unix(2_000_000_000, 0)); len(got) != len(want) {
		t.Errorf("Time2Internaldate in Local = %s", got)
	}
}

func TestTime2InternaldateTable(t *testing.T) {
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), `"01-Jan-2000 00:00:00 +0000"`},
		{time.Date(1996, 7, 17, 2, 44, 25, 999, time.FixedZone("PDT", -7*3600)), `"17-Jul-1996 02:44:25 -0700"`},
		{time.Date(2024, 12, 6, 23, 5, 9, 0, time.FixedZone("", 5*3600+45*60)), `"06-Dec-2024 23:05:09 +0545"`},
		{time.Date(2024, 3, 9, 1, 2, 3, 0, time.FixedZone("", -(9*3600+30*60))), `"09-Mar-2024 01:02:03 -0930"`},
		{time.Date(999, 10, 31, 0, 0, 0, 0, time.UTC), `"31-Oct-0999 00:00:00 +0000"`},
	}
	for _, tt := range tests {
		if got := Time2Internaldate(tt.t); got != tt.want {
			t.Errorf("Time2Internaldate(%v) = %s, want %s", tt.t, got, tt.want)
		}
	}
	// Month names are English for all twelve months.
	for m := time.January; m <= time.December; m++ {
		got := Time2Internaldate(time.Date(2020, m, 1, 0, 0, 0, 0, time.UTC))
		if want := m.String()[:3]; got[4:7] != want {
			t.Errorf("month %d: %s, want %s", m, got, want)
		}
	}
}

func TestParseInternaldate(t *testing.T) {
	tests := []struct {
		in      string
		want    string // RFC 3339
		wantErr string
	}{
		{in: "17-Jul-1996 02:44:25 -0700", want: "1996-07-17T02:44:25-07:00"},
		{in: " 7-Jul-1996 02:44:25 -0700", want: "1996-07-07T02:44:25-07:00"},
		{in: "7-Jul-1996 02:44:25 -0700", want: "1996-07-07T02:44:25-07:00"},
		{in: "07-jUL-1996 02:44:25 +0000", want: "1996-07-07T02:44:25Z"},
		{in: "31-Dec-9999 23:59:59 +2359", want: "9999-12-31T23:59:59+23:59"},
		{in: "30-Jun-2015 23:59:60 +0000", want: "2015-07-01T00:00:00Z"}, // leap second, normalised
		{in: `"17-Jul-1996 02:44:25 -0700"`, wantErr: "not of the form"},
		{in: "17-Jul-1996 02:44:25", wantErr: "not of the form"},
		{in: "17-Jul-96 02:44:25 -0700", wantErr: "not of the form"},
		{in: "17-Xyz-1996 02:44:25 -0700", wantErr: "unknown month"},
		{in: "17-Jul-1996 02:44:25 *0700", wantErr: "not of the form"},
		{in: "17-Jul-1996 02-44-25 -0700", wantErr: "not of the form"},
		{in: "32-Jul-1996 02:44:25 -0700", wantErr: "out of range"},
		{in: "", wantErr: "not of the form"},
		{in: strings.Repeat("x", 26), wantErr: "not of the form"},
		{in: strings.Repeat("x", 25), wantErr: "not of the form"},
	}
	for _, tt := range tests {
		got, err := ParseInternaldate(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseInternaldate(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.Format(time.RFC3339) != tt.want {
			t.Errorf("ParseInternaldate(%q) = %v, %v; want %s", tt.in, got.Format(time.RFC3339), err, tt.want)
		}
	}
}

func TestInternaldateRoundTrip(t *testing.T) {
	for _, sec := range []int64{0, 1, 951782400, 2_000_000_000, 4_102_444_800} {
		for _, off := range []int{0, 3600, -3600, 5*3600 + 30*60, -(3*3600 + 30*60), 14 * 3600, -12 * 3600} {
			in := time.Unix(sec, 0).In(time.FixedZone("", off))
			s := Time2Internaldate(in)
			got, err := ParseInternaldate(s[1 : len(s)-1])
			if err != nil || !got.Equal(in) {
				t.Errorf("round trip of %v via %s = %v, %v", in, s, got, err)
			}
			if _, o := got.Zone(); o != off {
				t.Errorf("round trip of %v: offset %d, want %d", in, o, off)
			}
			got2, ok := Internaldate2Time([]byte("1 (INTERNALDATE " + s + ")"))
			if !ok || !got2.Equal(in) {
				t.Errorf("Internaldate2Time of %s = %v, %v", s, got2, ok)
			}
		}
	}
}

func TestParseDateTimeAllocs(t *testing.T) {
	b := []byte("17-Jul-1996 02:44:25 -0700")
	if n := testing.AllocsPerRun(100, func() { _, _ = parseDateTime(b) }); n != 0 {
		t.Errorf("parseDateTime allocates %v times", n)
	}
}
