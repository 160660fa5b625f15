package bench

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"sync"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// The chat scenario (--scenario chat) is the traffic a chat service sees
// rather than one giant room: users in many rooms whose sizes follow a
// Zipf distribution (a few of thousands, most of a handful), each user in
// several, a steady rate of room messages and direct messages, sessions
// logging in and out throughout, and who calls. Latency is reported apart
// for small rooms, large rooms and direct messages. Against Redis the same
// traffic is a channel per room and one per user.

// ChatScenario shapes the chat scenario. Zero values take the defaults.
type ChatScenario struct {
	Users     int     // default Config.Conns[0]
	Rooms     int     // default Users/5
	PerUser   int     // rooms each user is in; default 3
	Zipf      float64 // the exponent of room popularity; default 1.1
	Rate      float64 // messages per second, rooms and DMs together; default Config.Rates[0], or 200
	DMShare   float64 // the share of them that are direct messages; default 0.2
	WhoRate   float64 // who calls per second; default 5
	ChurnRate float64 // extra sessions logging in (and out a second later) per second; default 20
	LargeRoom int     // a room of at least this many members is large; default 100
}

func (sc ChatScenario) withDefaults(cfg Config) ChatScenario {
	if sc.Users <= 0 {
		sc.Users = cfg.Conns[0]
	}
	if sc.Rooms <= 0 {
		sc.Rooms = max(sc.Users/5, 2)
	}
	if sc.PerUser <= 0 {
		sc.PerUser = min(3, sc.Rooms)
	}
	if sc.Zipf <= 1 {
		sc.Zipf = 1.1
	}
	if sc.Rate <= 0 {
		sc.Rate = cfg.Rates[0]
		if sc.Rate <= 0 {
			sc.Rate = 200
		}
	}
	if sc.DMShare <= 0 {
		sc.DMShare = 0.2
	}
	if sc.WhoRate <= 0 {
		sc.WhoRate = 5
	}
	if sc.ChurnRate <= 0 {
		sc.ChurnRate = 20
	}
	if sc.LargeRoom <= 0 {
		sc.LargeRoom = 100
	}
	return sc
}

// The classes latency is reported by.
const (
	classSmall = iota
	classLarge
	classDM
	numClasses
)

var classNames = [numClasses]string{"small rooms", "large rooms", "direct messages"}

// chatPlan is who is in which room.
type chatPlan struct {
	members [][]int // per room, its users
	rooms   [][]int // per user, its rooms
	class   []int   // per room, small or large
}

func newChatPlan(sc ChatScenario, rng *rand.Rand) chatPlan {
	p := chatPlan{members: make([][]int, sc.Rooms), rooms: make([][]int, sc.Users), class: make([]int, sc.Rooms)}
	zipf := rand.NewZipf(rng, sc.Zipf, 1, uint64(sc.Rooms-1))
	for u := range sc.Users {
		for len(p.rooms[u]) < sc.PerUser {
			r := int(zipf.Uint64())
			if !contains(p.rooms[u], r) {
				p.rooms[u] = append(p.rooms[u], r)
				p.members[r] = append(p.members[r], u)
			}
		}
	}
	for r, m := range p.members {
		if len(m) >= sc.LargeRoom {
			p.class[r] = classLarge
		}
	}
	return p
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// chatBody is a message's body: due, seq, class and sender, then padding.
func chatBody(dst []byte, due int64, seq uint64, class, from, size int) []byte {
	dst = strconv.AppendInt(dst[:0], due, 10)
	dst = append(dst, ':')
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, int64(class), 10)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, int64(from), 10)
	dst = append(dst, ':')
	for len(dst) < size {
		dst = append(dst, 'x')
	}
	return dst
}

// parseChatBody reads what chatBody wrote, without allocating: it runs
// once per delivery on every receiver.
func parseChatBody(b []byte) (due int64, class, from int, ok bool) {
	var f [4]int64
	for i := range f {
		j := bytes.IndexByte(b, ':')
		if j <= 0 {
			return 0, 0, 0, false
		}
		v, ok := atoiBytes(b[:j])
		if !ok {
			return 0, 0, 0, false
		}
		f[i], b = v, b[j+1:]
	}
	class = int(f[2])
	return f[0], class, int(f[3]), class >= 0 && class < numClasses
}

// atoiBytes parses a non-negative decimal that fits an int64.
func atoiBytes(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, v >= 0
}

// chatShards is how many locks the receivers' figures are spread over, so
// the thousands of receivers a large room wakes at once rarely contend.
const chatShards = 64

// chatShard is one share of the figures, by class.
type chatShard struct {
	mu       sync.Mutex
	hists    [numClasses]*hdrhistogram.Histogram
	received [numClasses]int64
}

// ChatResult is one target's run of the chat scenario.
type ChatResult struct {
	Target             Target                  `json:"target"`
	Users, Rooms       int                     `json:"-"`
	LargestRoom        int                     `json:"largest_room"`
	Messages           int64                   `json:"messages"`
	Expected, Received [numClasses]int64       `json:"-"`
	Latency            [numClasses]Percentiles `json:"-"`
	PerSec             float64                 `json:"deliveries_per_sec"`
	CPUPerDelivery     float64                 `json:"server_cpu_us_per_delivery"`
	DeliveriesPerWrite float64                 `json:"deliveries_per_write_call"`
	RSS                int64                   `json:"server_rss"`
	Churned, Whos      int64                   `json:"-"`
	hists              [numClasses]*hdrhistogram.Histogram
}

func roomName(r int) string { return "room" + strconv.Itoa(r) }

func userChannel(u int) string { return "user:" + userName(u) }

// userName is a user's nick: u<id>, or c<n> for the n-th churner (id -n).
func userName(u int) string {
	if u < 0 {
		return "c" + strconv.Itoa(-u)
	}
	return "u" + strconv.Itoa(u)
}
