// Package auth owns credentials: user and group IDs and capability sets of
// a task, and the permission questions asked of them.
package auth

// KUID and KGID are user and group IDs as the sandbox sees them.
type KUID uint32
type KGID uint32

// NoID is the -1 that means "unchanged" in set*id calls.
const NoID = ^uint32(0)

// Capability numbers (include/uapi/linux/capability.h).
const (
	CAP_CHOWN            = 0
	CAP_DAC_OVERRIDE     = 1
	CAP_DAC_READ_SEARCH  = 2
	CAP_FOWNER           = 3
	CAP_FSETID           = 4
	CAP_KILL             = 5
	CAP_SETGID           = 6
	CAP_SETUID           = 7
	CAP_SETPCAP          = 8
	CAP_NET_BIND_SERVICE = 10
	CAP_NET_ADMIN        = 12
	CAP_NET_RAW          = 13
	CAP_IPC_LOCK         = 14
	CAP_SYS_CHROOT       = 18
	CAP_SYS_PTRACE       = 19
	CAP_SYS_ADMIN        = 21
	CAP_SYS_NICE         = 23
	CAP_SYS_RESOURCE     = 24
	CAP_MKNOD            = 27
	CAP_AUDIT_WRITE      = 29
	CAP_SETFCAP          = 31
	CAP_LAST_CAP         = 40
)

// CapSet is a set of capabilities, bit N for capability N.
type CapSet uint64

// AllCaps holds every capability Linux defines.
const AllCaps = CapSet(1)<<(CAP_LAST_CAP+1) - 1

// Has reports whether cap is in s.
func (s CapSet) Has(cap int) bool { return s&(1<<uint(cap)) != 0 }

// Credentials are immutable once shared: change a copy (Fork) and install it.
type Credentials struct {
	RealKUID, EffectiveKUID, SavedKUID, FSKUID KUID
	RealKGID, EffectiveKGID, SavedKGID, FSKGID KGID
	ExtraKGIDs                                 []KGID

	PermittedCaps, InheritableCaps, EffectiveCaps, BoundingCaps, AmbientCaps CapSet
	KeepCaps                                                                 bool
	NoNewPrivs                                                               bool
}

// NewRoot returns the credentials of root with every capability.
func NewRoot() *Credentials {
	return &Credentials{PermittedCaps: AllCaps, EffectiveCaps: AllCaps, BoundingCaps: AllCaps}
}

// NewUser returns credentials of uid/gid; root (uid 0) keeps caps.
func NewUser(uid KUID, gid KGID, extra []KGID) *Credentials {
	c := &Credentials{
		RealKUID: uid, EffectiveKUID: uid, SavedKUID: uid, FSKUID: uid,
		RealKGID: gid, EffectiveKGID: gid, SavedKGID: gid, FSKGID: gid,
		ExtraKGIDs:   append([]KGID(nil), extra...),
		BoundingCaps: AllCaps,
	}
	if uid == 0 {
		c.PermittedCaps, c.EffectiveCaps = AllCaps, AllCaps
	}
	return c
}

// Fork returns a copy that may be changed.
func (c *Credentials) Fork() *Credentials {
	n := *c
	n.ExtraKGIDs = append([]KGID(nil), c.ExtraKGIDs...)
	return &n
}

// HasCapability reports whether cap is effective.
func (c *Credentials) HasCapability(cap int) bool { return c.EffectiveCaps.Has(cap) }

// InGroup reports whether gid is the fs group or a supplementary group.
func (c *Credentials) InGroup(gid KGID) bool {
	if c.FSKGID == gid {
		return true
	}
	for _, g := range c.ExtraKGIDs {
		if g == gid {
			return true
		}
	}
	return false
}

type ctxKey int

// CtxCredentials is the context.Context key for *Credentials.
const CtxCredentials ctxKey = 0

// CredentialsFromContext returns the credentials a context carries, or
// root's if it carries none (sentry-internal work).
func CredentialsFromContext(ctx interface{ Value(any) any }) *Credentials {
	if ctx != nil {
		if c, ok := ctx.Value(CtxCredentials).(*Credentials); ok && c != nil {
			return c
		}
	}
	return rootCreds
}

var rootCreds = NewRoot()
