package cyrus

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// Cyrus logs through syslog(3) only. Inside the sandbox (see sandbox.go)
// /dev/log leads to a datagram socket in Dir that this process reads,
// writing each message as a line of Dir/cyrus.log.

const (
	syslogSocket = "syslog.sock"
	logName      = "cyrus.log"
	masterOut    = "master.out" // master's -L file: its and its services' stdout and stderr
)

// syslogReceiver reads syslog datagrams into a log file.
type syslogReceiver struct {
	conn *net.UnixConn
	file *os.File
	done chan struct{}
}

// startSyslog listens on Dir/syslog.sock.
func (s *Server) startSyslog() error {
	sock := filepath.Join(s.Dir, syslogSocket)
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("cyrus: syslog socket: %w", err)
	}
	// The services run as nobody.
	if err := os.Chmod(sock, 0o666); err != nil {
		conn.Close()
		return fmt.Errorf("cyrus: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(s.Dir, logName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		conn.Close()
		return fmt.Errorf("cyrus: %w", err)
	}
	r := &syslogReceiver{conn: conn, file: f, done: make(chan struct{})}
	go r.run()
	s.syslog = r
	return nil
}

func (r *syslogReceiver) run() {
	defer close(r.done)
	defer r.file.Close()
	buf := make([]byte, 64<<10)
	for {
		n, _, err := r.conn.ReadFromUnix(buf)
		if err != nil {
			return
		}
		r.file.Write(syslogLine(buf[:n]))
	}
}

// syslogLine turns a datagram "<PRI>Mmm dd hh:mm:ss ident[pid]: text" into
// a line without the priority.
func syslogLine(msg []byte) []byte {
	if len(msg) > 0 && msg[0] == '<' {
		if i := bytes.IndexByte(msg, '>'); i > 0 && i < 6 {
			msg = msg[i+1:]
		}
	}
	msg = bytes.TrimRight(msg, "\x00\r\n")
	return append(msg, '\n')
}

// close stops the receiver once the server's processes are gone.
func (r *syslogReceiver) close() {
	r.conn.Close()
	<-r.done
}

// Logs returns the tail of the server's logs, for test failure messages:
// Cyrus's syslog messages (Dir/cyrus.log: logins, errors, IOERRORs) and
// what master and the services wrote to stdout and stderr
// (Dir/master.out). After Stop they are gone.
func (s *Server) Logs() string {
	var b strings.Builder
	for _, name := range []string{masterOut, logName} {
		f := filepath.Join(s.Dir, name)
		data, err := os.ReadFile(f)
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		const maxLog = 8 << 10
		if len(data) > maxLog {
			data = append([]byte("...\n"), data[len(data)-maxLog:]...)
		}
		fmt.Fprintf(&b, "--- %s ---\n%s", f, data)
	}
	if b.Len() == 0 {
		return "(no Cyrus log output in " + s.Dir + ")\n"
	}
	return b.String()
}
