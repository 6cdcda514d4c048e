package dovecot

import (
	"fmt"
	"testing"
	"time"
)

func TestZZDebug(t *testing.T) {
	s := StartT(t)
	user, pass, _ := s.NewUser()
	for i := 0; i < 3; i++ {
		c2 := dial(t, s.Addr)
		c2.greeting("* OK")
		t0 := time.Now()
		fmt.Fprintf(c2.c, "a LOGIN %s wrong\r\n", user)
		t.Logf("%s %v", c2.line(), time.Since(t0))
	}
	c2 := dial(t, s.Addr)
	c2.greeting("* OK")
	t0 := time.Now()
	c2.login(user, pass)
	t.Logf("%v", time.Since(t0))
}
