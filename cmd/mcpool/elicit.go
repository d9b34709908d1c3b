package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/mcpool/mcpool"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// answerFlags decide how the command answers a server's requests during a
// call: elicitation (a form to fill) and sampling (a reply to write).
type answerFlags struct {
	noInput bool
}

func (f *answerFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.noInput, "no-input", false, "never prompt: answer a server's elicitation with the schema's defaults\n"+
		"when they fill every required field, else decline (as when stdin is not a terminal)")
}

// Where prompts read answers, and whether that is a person at a terminal.
// Tests replace both.
var (
	answerInput io.Reader = os.Stdin
	interactive           = func() bool { return isCharDevice(os.Stdin) && isCharDevice(os.Stderr) }
)

func isCharDevice(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// handlers returns the client's elicitation and sampling handlers. The
// command declares elicitation always (without a person it can still apply
// defaults or decline) and sampling only with a person at the terminal to
// write the reply: it has no model of its own.
func (f *answerFlags) handlers(prompt io.Writer) *mcpool.ClientHandlers {
	a := &answerer{prompt: prompt}
	if !f.noInput && interactive() {
		a.lines = newLineReader(answerInput)
	}
	h := &mcpool.ClientHandlers{Elicitation: a.elicit}
	if a.lines != nil {
		h.CreateMessage = a.sample
	}
	return h
}

// answerer serves elicitation and sampling, one request at a time so that
// prompts never interleave.
type answerer struct {
	prompt io.Writer
	lines  *lineReader // nil: no person to ask
	mu     sync.Mutex
}

// errDecline and errCancel end a form early, at the person's word.
var (
	errDecline = errors.New("declined")
	errCancel  = errors.New("cancelled")
)

func (a *answerer) elicit(ctx context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := req.Params
	if p.Mode == "url" {
		return a.elicitURL(ctx, p)
	}
	schema, err := elicitSchema(p.RequestedSchema)
	if err != nil {
		return nil, err
	}
	if a.lines == nil {
		content, ok := defaultsFill(schema)
		if !ok {
			return &mcp.ElicitResult{Action: "decline"}, nil
		}
		return &mcp.ElicitResult{Action: "accept", Content: content}, nil
	}
	content, err := a.fill(ctx, p.Message, schema)
	switch {
	case errors.Is(err, errDecline):
		return &mcp.ElicitResult{Action: "decline"}, nil
	case errors.Is(err, errCancel), errors.Is(err, io.EOF):
		return &mcp.ElicitResult{Action: "cancel"}, nil
	case err != nil:
		return nil, err
	}
	return &mcp.ElicitResult{Action: "accept", Content: content}, nil
}

// elicitURL asks the person to open a URL (MCP spec 2025-11-25, URL mode
// elicitation); without a person, or for a URL that is not https (or http
// to this machine, see browsable), it declines.
func (a *answerer) elicitURL(ctx context.Context, p *mcp.ElicitParams) (*mcp.ElicitResult, error) {
	if a.lines == nil {
		return &mcp.ElicitResult{Action: "decline"}, nil
	}
	if !browsable(p.URL) {
		// Not even shown: a person might copy it into a browser.
		fmt.Fprintln(a.prompt, "mcpool: declined the server's request to open a URL: only https URLs, or http to this machine, are offered")
		return &mcp.ElicitResult{Action: "decline"}, nil
	}
	fmt.Fprintf(a.prompt, "mcpool: the server asks you to open a URL: %s\n%s\nopen it? [y/N] ", printable(p.Message), p.URL)
	line, err := a.lines.read(ctx)
	if err != nil {
		return &mcp.ElicitResult{Action: "cancel"}, nil
	}
	if yes, ok := parseYes(line); ok && yes {
		openBrowser(p.URL)
		return &mcp.ElicitResult{Action: "accept"}, nil
	}
	return &mcp.ElicitResult{Action: "decline"}, nil
}

// elicitSchema reads the requested schema (nil means an empty form).
func elicitSchema(raw any) (*jsonschema.Schema, error) {
	s := &jsonschema.Schema{Type: "object"}
	if raw == nil {
		return s, nil
	}
	b, err := json.Marshal(raw)
	if err == nil {
		err = json.Unmarshal(b, s)
	}
	if err != nil {
		return nil, fmt.Errorf("elicitation: unreadable requested schema: %w", err)
	}
	return s, nil
}

// defaultsFill returns the schema's defaults as content, and whether they
// fill every required field.
func defaultsFill(s *jsonschema.Schema) (map[string]any, bool) {
	content := map[string]any{}
	for name, prop := range s.Properties {
		if prop == nil || prop.Default == nil {
			continue
		}
		var v any
		if json.Unmarshal(prop.Default, &v) == nil {
			content[name] = v
		}
	}
	for _, name := range s.Required {
		if _, ok := content[name]; !ok {
			return nil, false
		}
	}
	return content, true
}

// fill prompts for each field in turn: required ones first, then by name.
// An empty answer takes the default, or leaves an optional field out.
// Each answer is checked against the field's schema before the next.
func (a *answerer) fill(ctx context.Context, message string, s *jsonschema.Schema) (map[string]any, error) {
	names := make([]string, 0, len(s.Properties))
	for name := range s.Properties {
		names = append(names, name)
	}
	slices.SortFunc(names, func(x, y string) int {
		rx, ry := slices.Contains(s.Required, x), slices.Contains(s.Required, y)
		if rx != ry {
			if rx {
				return -1
			}
			return 1
		}
		return strings.Compare(x, y)
	})
	fmt.Fprintf(a.prompt, "mcpool: the server asks: %s\n(Enter keeps the default; type :decline or :cancel to refuse)\n", printable(message))
	content := map[string]any{}
	for _, name := range names {
		prop := s.Properties[name]
		if prop == nil {
			prop = &jsonschema.Schema{}
		}
		required := slices.Contains(s.Required, name)
		resolved, err := prop.Resolve(nil)
		if err != nil {
			return nil, fmt.Errorf("elicitation: field %s: %w", name, err)
		}
		for {
			fmt.Fprint(a.prompt, printable(fieldPrompt(name, prop, required)))
			line, err := a.lines.read(ctx)
			if err != nil {
				return nil, err
			}
			switch strings.TrimSpace(line) {
			case ":decline":
				return nil, errDecline
			case ":cancel":
				return nil, errCancel
			}
			v, set, err := parseAnswer(strings.TrimSpace(line), prop)
			if err == nil && !set {
				if prop.Default != nil {
					err = json.Unmarshal(prop.Default, &v)
					set = err == nil
				} else if required {
					err = errors.New("required")
				}
			}
			if err == nil && set {
				err = resolved.Validate(v)
			}
			if err != nil {
				fmt.Fprintf(a.prompt, "  %s; try again\n", printable(err.Error()))
				continue
			}
			if set {
				content[name] = v
			}
			break
		}
	}
	return content, nil
}

func fieldPrompt(name string, p *jsonschema.Schema, required bool) string {
	var b strings.Builder
	b.WriteString(name)
	if p.Title != "" && p.Title != name {
		fmt.Fprintf(&b, " (%s)", p.Title)
	}
	kind := p.Type
	if kind == "" {
		kind = "string"
	}
	if len(p.Enum) > 0 {
		opts := make([]string, len(p.Enum))
		for i, e := range p.Enum {
			opts[i] = fmt.Sprint(e)
		}
		kind = "one of " + strings.Join(opts, ", ")
	}
	if kind == "array" && p.Items != nil && len(p.Items.Enum) > 0 {
		opts := make([]string, len(p.Items.Enum))
		for i, e := range p.Items.Enum {
			opts[i] = fmt.Sprint(e)
		}
		kind = "comma-separated, from " + strings.Join(opts, ", ")
	}
	fmt.Fprintf(&b, " [%s", kind)
	if !required {
		b.WriteString(", optional")
	}
	if p.Default != nil {
		fmt.Fprintf(&b, ", default %s", p.Default)
	}
	b.WriteString("]")
	if p.Description != "" {
		fmt.Fprintf(&b, " %s", p.Description)
	}
	b.WriteString(": ")
	return b.String()
}

// parseAnswer turns a line into a value of the field's type; set is false
// for an empty line.
func parseAnswer(line string, p *jsonschema.Schema) (v any, set bool, err error) {
	if line == "" {
		return nil, false, nil
	}
	switch p.Type {
	case "number":
		f, err := strconv.ParseFloat(line, 64)
		if err != nil {
			return nil, false, fmt.Errorf("%q is not a number", line)
		}
		return f, true, nil
	case "integer":
		n, err := strconv.ParseInt(line, 10, 64)
		if err != nil {
			return nil, false, fmt.Errorf("%q is not an integer", line)
		}
		return float64(n), true, nil // JSON numbers, as the validator expects
	case "boolean":
		b, ok := parseYes(line)
		if !ok {
			return nil, false, fmt.Errorf("%q is not yes or no", line)
		}
		return b, true, nil
	case "array":
		var items []any
		for part := range strings.SplitSeq(line, ",") {
			if part = strings.TrimSpace(part); part != "" {
				items = append(items, part)
			}
		}
		return items, true, nil
	default:
		return line, true, nil
	}
}

func parseYes(s string) (yes, ok bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "y", "yes", "true", "1":
		return true, true
	case "n", "no", "false", "0", "":
		return false, true
	}
	return false, false
}

// sample lets the person at the terminal write the reply the server asked
// a model for (sampling/createMessage); an empty reply declines.
func (a *answerer) sample(ctx context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	fmt.Fprintln(a.prompt, "mcpool: the server asks for a model's reply to:")
	if sp := req.Params.SystemPrompt; sp != "" {
		fmt.Fprintf(a.prompt, "  [system] %s\n", printable(sp))
	}
	for _, m := range req.Params.Messages {
		text := "(non-text content)"
		if t, ok := m.Content.(*mcp.TextContent); ok {
			text = t.Text
		}
		fmt.Fprintf(a.prompt, "  [%s] %s\n", printable(string(m.Role)), printable(text))
	}
	fmt.Fprint(a.prompt, "your reply (empty to decline): ")
	line, err := a.lines.read(ctx)
	if err != nil || strings.TrimSpace(line) == "" {
		return nil, errors.New("the user declined to answer the sampling request")
	}
	return &mcp.CreateMessageResult{
		Content: &mcp.TextContent{Text: strings.TrimSpace(line)}, Model: "human", Role: "assistant", StopReason: "endTurn",
	}, nil
}

// lineReader reads lines from the person's input. A read waits for a line
// or for ctx; a line that arrives after its reader gave up is kept for the
// next read, so no typed answer is lost and only one read is ever under way.
type lineReader struct {
	in      *bufio.Reader
	mu      sync.Mutex
	pending chan lineResult // non-nil while a read is under way
}

type lineResult struct {
	line string
	err  error
}

func newLineReader(r io.Reader) *lineReader { return &lineReader{in: bufio.NewReader(r)} }

func (l *lineReader) read(ctx context.Context) (string, error) {
	l.mu.Lock()
	if l.pending == nil {
		ch := make(chan lineResult, 1)
		l.pending = ch
		go func() {
			line, err := l.in.ReadString('\n')
			if err != nil && line != "" {
				err = nil // a last line without a newline still counts
			}
			ch <- lineResult{strings.TrimRight(line, "\r\n"), err}
		}()
	}
	ch := l.pending
	l.mu.Unlock()
	select {
	case r := <-ch:
		l.mu.Lock()
		l.pending = nil
		l.mu.Unlock()
		return r.line, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// withClientHandlers gives a per-call client the same answers as the
// pools' (see mcpool.ClientHandlers).
func (t *target) withClientHandlers(o *mcp.ClientOptions) *mcp.ClientOptions {
	if h := t.cfg.ClientHandlers; h != nil {
		o.ElicitationHandler, o.CreateMessageHandler = h.Elicitation, h.CreateMessage
	}
	return o
}
