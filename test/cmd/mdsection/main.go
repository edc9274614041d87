// Command mdsection replaces the text between the markers
// "<!-- NAME:begin -->" and "<!-- NAME:end -->" in a markdown file with
// its standard input, so generated tables in README.md stay current
// without hand edits. With -table-header it prepends a markdown table
// header unless the input already starts with that header.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

func main() {
	file := flag.String("file", "README.md", "markdown file to update in place")
	section := flag.String("section", "", "marker name, e.g. syscalls for <!-- syscalls:begin -->")
	header := flag.String("table-header", "", `table header row, e.g. "| nr | name | support | note |"`)
	flag.Parse()
	in, err := io.ReadAll(os.Stdin)
	if err == nil {
		err = update(*file, *section, *header, string(in))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mdsection:", err)
		os.Exit(1)
	}
}

func update(file, section, header, body string) error {
	doc, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	out, err := replace(string(doc), section, withHeader(header, body))
	if err != nil {
		return err
	}
	return os.WriteFile(file, []byte(out), 0o644)
}

func withHeader(header, body string) string {
	body = strings.TrimRight(body, "\n") + "\n"
	if header == "" || strings.HasPrefix(strings.TrimSpace(body), strings.TrimSpace(header)) {
		return body
	}
	cols := strings.Count(strings.TrimSpace(header), "|") - 1
	return header + "\n" + "|" + strings.Repeat("---|", max(cols, 1)) + "\n" + body
}

// replace swaps what lies between the two markers, keeping the markers.
func replace(doc, section, body string) (string, error) {
	if section == "" {
		return "", errors.New("no -section given")
	}
	begin := "<!-- " + section + ":begin -->"
	end := "<!-- " + section + ":end -->"
	i := strings.Index(doc, begin)
	j := strings.Index(doc, end)
	if i < 0 || j < 0 || j < i {
		return "", fmt.Errorf("markers %q and %q not found in order", begin, end)
	}
	return doc[:i+len(begin)] + "\n" + body + doc[j:], nil
}
