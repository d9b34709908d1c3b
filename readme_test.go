package mcpool_test

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// readmeMaxLines keeps README.md a front page; the reference lives in docs/.
const readmeMaxLines = 250

// docFiles are the Markdown files whose links and snippets are checked:
// README.md, the other Markdown files at the root and docs/*.md.
func docFiles(t *testing.T) []string {
	t.Helper()
	root, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := filepath.Glob(filepath.Join("docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) == 0 {
		t.Fatal("docs/ has no Markdown file")
	}
	return append(root, docs...)
}

func TestReadmeIsAFrontPage(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n > readmeMaxLines {
		t.Errorf("README.md has %d lines; keep it at most %d and move the reference to docs/", n, readmeMaxLines)
	}
}

// mdLink matches an inline Markdown link or image: [text](target) or
// ![alt](target), the target without spaces (an optional title after it).
var mdLink = regexp.MustCompile(`!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)

// TestDocLinksResolve checks every relative link of README.md, the other
// root Markdown files and docs/*.md: the file exists, and a #fragment names
// a heading of the Markdown file it points to.
func TestDocLinksResolve(t *testing.T) {
	for _, file := range docFiles(t) {
		for _, l := range markdownLinks(t, file) {
			target := l.target
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, frag, _ := strings.Cut(target, "#")
			resolved := file
			if path != "" {
				resolved = filepath.Join(filepath.Dir(file), filepath.FromSlash(path))
				if _, err := os.Stat(resolved); err != nil {
					t.Errorf("%s:%d: link %q: %s does not exist", file, l.line, target, resolved)
					continue
				}
			}
			if frag == "" || !strings.HasSuffix(resolved, ".md") {
				continue
			}
			if !headingAnchors(t, resolved)[frag] {
				t.Errorf("%s:%d: link %q: %s has no heading with anchor #%s", file, l.line, target, resolved, frag)
			}
		}
	}
}

// TestDocGoSnippetsAreCompiled checks that every ```go block of the docs is
// a verbatim excerpt of a test or Example somewhere in the module (leading
// white space and blank lines aside), so that each one compiles as written.
func TestDocGoSnippetsAreCompiled(t *testing.T) {
	var tests []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			tests = append(tests, "\n"+normalizeCode(string(b))+"\n")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range docFiles(t) {
		for _, s := range goSnippets(t, file) {
			want := "\n" + normalizeCode(s.code) + "\n"
			found := false
			for _, src := range tests {
				if strings.Contains(src, want) {
					found = true
					break
				}
			}
			if !found {
				t.Errorf("%s:%d: this Go snippet is in no _test.go file: make it an excerpt of an Example (or test) as written", file, s.line)
			}
		}
	}
}

type mdLinkAt struct {
	target string
	line   int
}

// markdownLinks returns the inline links of a Markdown file outside fenced
// code blocks and code spans.
func markdownLinks(t *testing.T, file string) []mdLinkAt {
	t.Helper()
	var links []mdLinkAt
	forEachProseLine(t, file, func(n int, line string) {
		for _, m := range mdLink.FindAllStringSubmatch(stripCodeSpans(line), -1) {
			links = append(links, mdLinkAt{m[1], n})
		}
	})
	return links
}

type snippet struct {
	code string
	line int
}

// goSnippets returns the ```go blocks of a Markdown file.
func goSnippets(t *testing.T, file string) []snippet {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []snippet
	var cur *snippet
	fence := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case fence == "" && strings.HasPrefix(trimmed, "```"):
			fence = "```"
			if strings.TrimSpace(strings.TrimPrefix(trimmed, "```")) == "go" {
				cur = &snippet{line: n}
			}
		case fence != "" && trimmed == fence:
			fence = ""
			if cur != nil {
				out = append(out, *cur)
				cur = nil
			}
		case cur != nil:
			cur.code += line + "\n"
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// forEachProseLine calls fn with each line of a Markdown file that is not
// inside a fenced code block.
func forEachProseLine(t *testing.T, file string, fn func(n int, line string)) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	inFence := false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			continue
		}
		if !inFence {
			fn(n, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

var codeSpan = regexp.MustCompile("`[^`]*`")

func stripCodeSpans(line string) string { return codeSpan.ReplaceAllString(line, "``") }

// headingAnchors returns the anchors GitHub gives the headings of a
// Markdown file: lower case, punctuation dropped, spaces as hyphens, and
// -1, -2… after repeats.
func headingAnchors(t *testing.T, file string) map[string]bool {
	t.Helper()
	anchors := map[string]bool{}
	seen := map[string]int{}
	forEachProseLine(t, file, func(_ int, line string) {
		if !strings.HasPrefix(line, "#") {
			return
		}
		text := strings.TrimSpace(strings.TrimLeft(line, "#"))
		if text == "" || !strings.HasPrefix(line, strings.Repeat("#", len(line)-len(strings.TrimLeft(line, "#")))+" ") {
			return
		}
		a := slug(text)
		if k := seen[a]; k > 0 {
			anchors[fmt.Sprintf("%s-%d", a, k)] = true
		} else {
			anchors[a] = true
		}
		seen[a]++
	})
	return anchors
}

func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// normalizeCode drops each line's leading and trailing white space and the
// blank lines, so that an excerpt matches whatever its indentation.
func normalizeCode(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
