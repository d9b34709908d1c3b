package mcpool

import (
	"errors"
	"fmt"
	"strings"
)

// Validate checks cfg as [NewGroup] does, without making any pool: the
// separator, that there is at least one server, that names are set,
// unique, free of the separator and still told apart once cleaned for tool
// names, each Balance, and each server's Config (or every replica's).
// Errors are [*ConfigError] values (errors.Is ErrInvalidConfig) whose Field
// names the server, such as `Servers["github"].MaxSessions` or
// `Servers["github"].Replicas[1].URL`; group-wide ones name "Separator" or
// "Servers". It returns the first problem found, in configuration order.
func (cfg *GroupConfig) Validate() error {
	sep := cfg.Separator
	if sep == "" {
		sep = DefaultSeparator
	}
	if strings.IndexFunc(sep, func(r rune) bool { return !toolNameChar(r) }) >= 0 || len(sep) > 8 {
		return configErr("Separator", fmt.Sprintf("%q may hold only A-Z a-z 0-9 _ - . and at most 8 of them", sep))
	}
	if len(cfg.Servers) == 0 {
		return configErr("Servers", "is empty: name at least one server")
	}
	names := map[string]bool{}
	prefixes := map[string]string{} // cleaned name → server name
	for _, sc := range cfg.Servers {
		field := fmt.Sprintf("Servers[%q]", sc.Name)
		prefix := sanitizeName(sc.Name)
		switch {
		case sc.Name == "":
			return configErr("Servers", "has a server with no Name")
		case strings.Contains(prefix, sep):
			return configErr(field+".Name", fmt.Sprintf("contains the separator %q (once characters a tool name may not hold are replaced by _): namespaced names could not be split; rename the server or choose another separator", sep))
		case names[sc.Name]:
			return configErr(field+".Name", "is used twice")
		}
		if other, dup := prefixes[prefix]; dup {
			return configErr(field+".Name", fmt.Sprintf("becomes %q in tool names, as server %q does: rename one", prefix, other))
		}
		names[sc.Name], prefixes[prefix] = true, sc.Name
		if sc.Balance < LeastLoaded || sc.Balance > Failover {
			return configErr(field+".Balance", fmt.Sprintf("is %v", sc.Balance))
		}
		if len(sc.Replicas) == 0 {
			if err := serverConfigErr(field+".", sc.Config.validateOnly()); err != nil {
				return err
			}
		}
		for i := range sc.Replicas {
			if err := serverConfigErr(fmt.Sprintf("%s.Replicas[%d].", field, i), sc.Replicas[i].validateOnly()); err != nil {
				return err
			}
		}
	}
	return nil
}

// validateOnly is validate's verdict alone.
func (c *Config) validateOnly() error {
	_, err := c.validate()
	return err
}

// serverConfigErr puts a server's field path in front of a Config's
// error.
func serverConfigErr(prefix string, err error) error {
	var ce *ConfigError
	if errors.As(err, &ce) {
		return configErr(prefix+ce.Field, ce.Reason)
	}
	return err
}
