package gateway

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Portable session ids. With Options.SessionKeys set, a downstream session's
// Mcp-Session-Id carries what any replica of the deployment needs to serve
// it, authenticated with HMAC-SHA256 under a key the replicas share:
//
//	version(1) expiry(8) created(8) identity(16) origin(8) nonce(8) state(JSON) mac(16)
//
// base64url without padding. The state (the negotiated protocol version, the
// client's capabilities and info, the log level, and, encrypted, the
// session's isolated HTTP upstream sessions and the address of the replica
// holding its other isolated upstream sessions) is decoded only when a
// replica adopts (or forwards) the session; a request checks the mac, the expiry and the
// identity from the fixed-size header. Keys are derived once, when the
// gateway is made; the HMAC states are reused from a pool, so that opening
// an id costs two SHA-256 compressions per 64 bytes and no key schedule.

const (
	sessionIDVersion = 1
	sessionHeaderLen = 1 + 8 + 8 + 16 + 8 + 8
	sessionMACLen    = 16
	// minSessionKey is the shortest key accepted: 128 bits.
	minSessionKey = 16
)

// DefaultSessionMaxAge is how long a portable session id is accepted after
// its session was created, when Options.SessionMaxAge is zero.
const DefaultSessionMaxAge = 24 * time.Hour

var (
	// errSessionInvalid: the id is not one of ours (forged, tampered with,
	// signed with a key no longer accepted, or malformed).
	errSessionInvalid = errors.New("session id not valid for this deployment")
	// errSessionExpired: the id was ours, and its session's lifetime ended.
	errSessionExpired = errors.New("session id expired")
)

// portableState is the part of a session id a replica needs to restore the
// server session.
type portableState struct {
	Version string                  `json:"v"`
	Caps    *mcp.ClientCapabilities `json:"c,omitempty"`
	Info    *mcp.Implementation     `json:"i,omitempty"`
	Level   mcp.LoggingLevel        `json:"l,omitempty"`
	// Up are the session's isolated upstream sessions, by server name
	// (resume.go). They travel encrypted (AES-256-GCM under a key derived
	// from the session key), in Sealed: the upstream's session id is not
	// shown to whoever reads the downstream id.
	Up     map[string]*upstreamRef `json:"-"`
	Sealed []byte                  `json:"x,omitempty"`
	// OwnerURL is the MCP endpoint of the replica holding the session's
	// upstream sessions that cannot travel in the id (forward.go); "" for
	// none. It travels encrypted too, in Owner.
	OwnerURL string `json:"-"`
	Owner    []byte `json:"o,omitempty"`
}

// sessionClaims is an opened session id.
type sessionClaims struct {
	expiry   int64    // unix seconds
	created  int64    // unix seconds
	identity [16]byte // zero: not bound to a credential
	origin   [8]byte  // the replica (process) that created the session
	state    []byte   // portableState, JSON
	key      int      // the index of the key that verified the mac
	aead     cipher.AEAD
}

// sessionKey is one accepted key, derived once.
type sessionKey struct {
	mac      sync.Pool   // hash.Hash: HMAC-SHA256 under the mac key
	identity sync.Pool   // hash.Hash: HMAC-SHA256 under the identity key
	state    cipher.AEAD // AES-256-GCM for portableState.Sealed and Owner
	hop      []byte      // HMAC-SHA256 key of internal hops (forward.go)
}

// sessionCodec seals and opens portable session ids. It is safe for
// concurrent use.
type sessionCodec struct {
	keys   []*sessionKey // first signs, all verify
	maxAge time.Duration
	origin [8]byte // this process, random at start
	now    func() time.Time
}

// newSessionCodec derives the keys of the ids from the key material (the
// first signs new ids, all open them: list a new key first and keep the old
// one until its ids expire).
func newSessionCodec(material [][]byte, maxAge time.Duration) (*sessionCodec, error) {
	if len(material) == 0 {
		return nil, errors.New("no session key")
	}
	c := &sessionCodec{maxAge: maxAge, now: time.Now}
	if c.maxAge <= 0 {
		c.maxAge = DefaultSessionMaxAge
	}
	_, _ = rand.Read(c.origin[:])
	for i, m := range material {
		if len(m) < minSessionKey {
			return nil, fmt.Errorf("session key %d is %d bytes: use at least %d random bytes (openssl rand -base64 32)", i+1, len(m), minSessionKey)
		}
		macKey, idKey := derive(m, "mcpool session id mac v1"), derive(m, "mcpool session identity v1")
		k := &sessionKey{hop: derive(m, "mcpool replica hop v1")}
		block, err := aes.NewCipher(derive(m, "mcpool session state enc v1"))
		if err != nil {
			return nil, err
		}
		if k.state, err = cipher.NewGCM(block); err != nil {
			return nil, err
		}
		k.mac.New = func() any { return hmac.New(sha256.New, macKey) }
		k.identity.New = func() any { return hmac.New(sha256.New, idKey) }
		c.keys = append(c.keys, k)
	}
	return c, nil
}

// derive is HKDF-Expand (RFC 5869) for one block, with the key material as
// the pseudorandom key: the material is a shared secret of at least 128
// bits, so no extract step is needed.
func derive(material []byte, label string) []byte {
	m := hmac.New(sha256.New, material)
	m.Write([]byte(label))
	m.Write([]byte{1})
	return m.Sum(nil)
}

func (k *sessionKey) sum(dst, data []byte) []byte { return pooledSum(&k.mac, dst, data) }

func pooledSum(p *sync.Pool, dst, data []byte) []byte {
	h := p.Get().(hash.Hash)
	h.Reset()
	h.Write(data)
	dst = h.Sum(dst)
	p.Put(h)
	return dst
}

// identityDigest returns the digest of a caller's identity under key i:
// zero for no identity. Digests are keyed, so that an id does not reveal a
// credential to whoever reads it.
func (c *sessionCodec) identityDigest(i int, identity string) (d [16]byte) {
	if identity == "" {
		return d
	}
	var buf [sha256.Size]byte
	copy(d[:], pooledSum(&c.keys[i].identity, buf[:0], []byte(identity)))
	return d
}

// seal returns a new session id for a session bound to identity (empty:
// none) with state st.
func (c *sessionCodec) seal(identity string, st *portableState) (string, error) {
	if len(st.Up) > 0 || st.OwnerURL != "" {
		cp := *st
		if len(st.Up) > 0 {
			up, err := json.Marshal(st.Up)
			if err != nil {
				return "", err
			}
			cp.Sealed = c.encrypt(up)
		}
		if st.OwnerURL != "" {
			cp.Owner = c.encrypt([]byte(st.OwnerURL))
		}
		st = &cp
	}
	state, err := json.Marshal(st)
	if err != nil {
		return "", err
	}
	now := c.now()
	raw := make([]byte, sessionHeaderLen, sessionHeaderLen+len(state)+sha256.Size)
	raw[0] = sessionIDVersion
	binary.BigEndian.PutUint64(raw[1:], uint64(now.Add(c.maxAge).Unix()))
	binary.BigEndian.PutUint64(raw[9:], uint64(now.Unix()))
	who := c.identityDigest(0, identity)
	copy(raw[17:33], who[:])
	copy(raw[33:41], c.origin[:])
	_, _ = rand.Read(raw[41:49])
	raw = append(raw, state...)
	raw = c.keys[0].sum(raw, raw)[:len(raw)+sessionMACLen]
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

// encrypt seals plain under the signing key's state key: nonce, then
// ciphertext.
func (c *sessionCodec) encrypt(plain []byte) []byte {
	aead := c.keys[0].state
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	_, _ = rand.Read(nonce)
	return aead.Seal(nonce, nonce, plain, nil)
}

// decrypt opens what encrypt sealed.
func decrypt(aead cipher.AEAD, sealed []byte) ([]byte, error) {
	n := aead.NonceSize()
	if len(sealed) < n {
		return nil, errSessionInvalid
	}
	plain, err := aead.Open(nil, sealed[:n], sealed[n:], nil)
	if err != nil {
		return nil, errSessionInvalid
	}
	return plain, nil
}

// owner returns the MCP endpoint of the replica holding cl's session's
// upstream sessions that cannot travel in the id, or "" when it has none.
// Only the field it needs is decoded.
func (cl *sessionClaims) owner() string {
	if !bytes.Contains(cl.state, []byte(`"o":`)) {
		return ""
	}
	var st struct {
		Owner []byte `json:"o"`
	}
	if json.Unmarshal(cl.state, &st) != nil || len(st.Owner) == 0 {
		return ""
	}
	u, err := decrypt(cl.aead, st.Owner)
	if err != nil {
		return ""
	}
	return string(u)
}

// open checks id's mac under every accepted key and its expiry, and
// returns its claims. Errors are errSessionInvalid or errSessionExpired.
func (c *sessionCodec) open(id string) (sessionClaims, error) {
	var cl sessionClaims
	n := base64.RawURLEncoding.DecodedLen(len(id))
	if n < sessionHeaderLen+sessionMACLen || n > 64<<10 {
		return cl, errSessionInvalid
	}
	raw, err := base64.RawURLEncoding.AppendDecode(make([]byte, 0, n), []byte(id))
	if err != nil || raw[0] != sessionIDVersion {
		return cl, errSessionInvalid
	}
	body, mac := raw[:len(raw)-sessionMACLen], raw[len(raw)-sessionMACLen:]
	cl.key = -1
	var sum [sha256.Size]byte
	for i, k := range c.keys {
		if subtle.ConstantTimeCompare(k.sum(sum[:0], body)[:sessionMACLen], mac) == 1 {
			cl.key = i
			break
		}
	}
	if cl.key < 0 {
		return cl, errSessionInvalid
	}
	cl.aead = c.keys[cl.key].state
	cl.expiry = int64(binary.BigEndian.Uint64(body[1:]))
	cl.created = int64(binary.BigEndian.Uint64(body[9:]))
	copy(cl.identity[:], body[17:33])
	copy(cl.origin[:], body[33:41])
	cl.state = body[sessionHeaderLen:]
	if c.now().Unix() >= cl.expiry {
		return cl, errSessionExpired
	}
	return cl, nil
}

// boundTo reports whether a caller with identity may use the session of cl.
func (c *sessionCodec) boundTo(cl *sessionClaims, identity string) bool {
	d := c.identityDigest(cl.key, identity)
	return subtle.ConstantTimeCompare(d[:], cl.identity[:]) == 1
}

// restore decodes cl's state into the server session state that
// Server.Connect takes, and the isolated upstream sessions it carries.
func (cl *sessionClaims) restore() (*mcp.ServerSessionState, map[string]*upstreamRef, error) {
	var st portableState
	if err := json.Unmarshal(cl.state, &st); err != nil {
		return nil, nil, errSessionInvalid
	}
	if len(st.Sealed) > 0 {
		up, err := decrypt(cl.aead, st.Sealed)
		if err != nil || json.Unmarshal(up, &st.Up) != nil {
			return nil, nil, errSessionInvalid
		}
	}
	return &mcp.ServerSessionState{
		InitializeParams: &mcp.InitializeParams{
			ProtocolVersion: st.Version,
			Capabilities:    st.Caps,
			ClientInfo:      st.Info,
		},
		InitializedParams:         &mcp.InitializedParams{},
		NegotiatedProtocolVersion: st.Version,
		LogLevel:                  st.Level,
	}, st.Up, nil
}
