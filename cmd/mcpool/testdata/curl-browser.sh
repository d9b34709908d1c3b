#!/bin/sh
# A browser for tests: follows the authorization URL's redirects back to
# the client's loopback redirect listener, as a person approving would.
exec curl -sSL -o /dev/null --max-time 30 "$1"
