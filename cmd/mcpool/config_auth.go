package main

import (
	"fmt"
	"io"

	"github.com/mcpool/mcpool"
)

// configureGroupAuth gives the servers of a config file the OAuth handlers
// their "auth" objects ask for (mcpool.servers.NAME.auth), as the flags do
// for one server: the authorization-code flow with PKCE ("oauth": true) or
// the client-credentials grant ("clientId" and "clientSecret"). A "token"
// the loader has already applied. prompt receives the authorization URLs.
// Call stop when the command ends: it closes the redirect listeners.
func configureGroupAuth(gc *mcpool.GroupConfig, prompt io.Writer) (stop func(), err error) {
	var stops []func()
	stop = func() {
		for _, s := range stops {
			s()
		}
	}
	for i := range gc.Servers {
		sc := &gc.Servers[i]
		configs := []*mcpool.Config{&sc.Config}
		if len(sc.Replicas) > 0 { // Config is not used then
			configs = nil
			for j := range sc.Replicas {
				configs = append(configs, &sc.Replicas[j])
			}
		}
		if sc.Auth != nil || configs[0].Headers.Get("Authorization") != "" {
			credentialsGiven.Store(true) // a 401 then means a refused credential
		}
		a := sc.Auth
		if a == nil || (!a.OAuth && a.ClientID == "") {
			continue
		}
		sa := serverAuth{OAuth: a.OAuth, ClientID: a.ClientID, ClientSecret: a.ClientSecret, ClientMetadataURL: a.ClientMetadataURL}
		for _, c := range configs {
			s, err := sa.configure(c, prompt)
			stops = append(stops, s)
			if err != nil {
				stop()
				return func() {}, fmt.Errorf("server %q: auth: %w", sc.Name, err)
			}
		}
	}
	return stop, nil
}
