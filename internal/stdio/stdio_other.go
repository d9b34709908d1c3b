//go:build !unix

package stdio

import "os"

// pollable reports false: on this system stdio is served as
// mcp.StdioTransport serves it.
func pollable(in, out int) (r, w *os.File, ok bool) { return nil, nil, false }
