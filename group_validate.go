package mcpool

import (
	"errors"
	"fmt"
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
	// The naming rules (separator, names set, unique and told apart once
	// cleaned, Unprefixed) have one owner: Naming.
	if _, err := cfg.Naming(); err != nil {
		return err
	}
	for _, sc := range cfg.Servers {
		field := fmt.Sprintf("Servers[%q]", sc.Name)
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
