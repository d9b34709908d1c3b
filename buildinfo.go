package mcpool

import (
	"runtime"
	"runtime/debug"
	"sync"
)

// Build describes the build of the running program, as far as mcpool
// is concerned. See [BuildInfo].
type Build struct {
	// Version is this module's version: the module version recorded in
	// the binary (a tag, or a pseudo-version from the VCS), or the Version
	// constant followed by " (devel)" when the binary records none (a
	// build from a work tree with VCS stamping off).
	Version string
	// Revision is the VCS revision the binary was built from, with
	// "+dirty" when the work tree had changes; empty when not recorded.
	Revision string
	// GoVersion is the Go toolchain that built the binary, e.g. "go1.25.1".
	GoVersion string
	// SDKVersion is the version of github.com/modelcontextprotocol/go-sdk
	// linked in, e.g. "v1.8.0"; "unknown" when not recorded.
	SDKVersion string
}

// String is the one-line form printed by "mcpool version": the version,
// the revision when known, the Go version and the go-sdk version.
func (b Build) String() string {
	s := "mcpool " + b.Version
	if b.Revision != "" {
		s += " (" + b.Revision + ")"
	}
	return s + " " + b.GoVersion + " go-sdk " + b.SDKVersion
}

const (
	modulePath = "github.com/mcpool/mcpool"
	sdkPath    = "github.com/modelcontextprotocol/go-sdk"
)

// BuildInfo reports the build of the running program, read once from
// runtime/debug.ReadBuildInfo: this module's version and VCS revision, the
// Go version and the go-sdk version. It is safe for concurrent use.
var BuildInfo = sync.OnceValue(func() Build {
	b := Build{Version: Version + " (devel)", GoVersion: runtime.Version(), SDKVersion: "unknown"}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	mods := append([]*debug.Module{&info.Main}, info.Deps...)
	for _, m := range mods {
		if m.Replace != nil {
			m = m.Replace
		}
		switch {
		case m.Path == modulePath && m.Version != "" && m.Version != "(devel)":
			b.Version = m.Version
		case m.Path == sdkPath && m.Version != "":
			b.SDKVersion = m.Version
		}
	}
	if info.Main.Path == modulePath {
		var rev string
		var dirty bool
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" && dirty {
			rev += "+dirty"
		}
		b.Revision = rev
	}
	return b
})
