package imap

// State is the protocol state of a Client, as defined by RFC 3501 section 3,
// plus the pseudo-state IDLING that imaplib uses while an IDLE command runs.
type State int

// The states a Client moves through.
const (
	StateNonAuth  State = iota // connected, not yet authenticated
	StateAuth                  // authenticated, no mailbox selected
	StateSelected              // a mailbox is selected
	StateLogout                // logged out or connection lost
	StateIdling                // an Idler is open; only the Idler may talk
)

var stateNames = [...]string{"NONAUTH", "AUTH", "SELECTED", "LOGOUT", "IDLING"}

// String returns imaplib's name for s, such as "SELECTED".
func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "UNKNOWN"
}

// stateSet is a bit set of states.
type stateSet uint8

func states(ss ...State) stateSet {
	var m stateSet
	for _, s := range ss {
		m |= 1 << s
	}
	return m
}

func (m stateSet) has(s State) bool { return m&(1<<s) != 0 }

func (m stateSet) String() string {
	out := ""
	for s := StateNonAuth; s <= StateIdling; s++ {
		if m.has(s) {
			if out != "" {
				out += ", "
			}
			out += s.String()
		}
	}
	return out
}

var (
	anyState = states(StateNonAuth, StateAuth, StateSelected, StateLogout)
	authSel  = states(StateAuth, StateSelected)
	selOnly  = states(StateSelected)
	nonAuth  = states(StateNonAuth)
	authOnly = states(StateAuth)
)

// commandStates is imaplib's Commands table: the states in which each
// command may be issued. IDLING appears in none of them, so any command
// issued while an Idler is open fails before anything is sent.
var commandStates = map[string]stateSet{
	"APPEND":        authSel,
	"AUTHENTICATE":  nonAuth,
	"CAPABILITY":    anyState,
	"CHECK":         selOnly,
	"CLOSE":         selOnly,
	"COPY":          selOnly,
	"CREATE":        authSel,
	"DELETE":        authSel,
	"DELETEACL":     authSel,
	"ENABLE":        authOnly,
	"EXAMINE":       authSel,
	"EXPUNGE":       selOnly,
	"FETCH":         selOnly,
	"GETACL":        authSel,
	"GETANNOTATION": authSel,
	"GETQUOTA":      authSel,
	"GETQUOTAROOT":  authSel,
	"ID":            anyState,
	"IDLE":          authSel,
	"LIST":          authSel,
	"LOGIN":         nonAuth,
	"LOGOUT":        anyState,
	"LSUB":          authSel,
	"MOVE":          selOnly,
	"MYRIGHTS":      authSel,
	"NAMESPACE":     authSel,
	"NOOP":          anyState,
	"PARTIAL":       selOnly,
	"PROXYAUTH":     authOnly,
	"RENAME":        authSel,
	"SEARCH":        selOnly,
	"SELECT":        authSel,
	"SETACL":        authSel,
	"SETANNOTATION": authSel,
	"SETQUOTA":      authSel,
	"SORT":          selOnly,
	"STARTTLS":      nonAuth,
	"STATUS":        authSel,
	"STORE":         selOnly,
	"SUBSCRIBE":     authSel,
	"THREAD":        selOnly,
	"UID":           selOnly,
	"UNSELECT":      selOnly,
	"UNSUBSCRIBE":   authSel,
	"XATOM":         states(StateNonAuth, StateAuth, StateSelected),
}
