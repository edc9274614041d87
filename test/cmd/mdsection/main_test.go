package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReplaceKeepsMarkersAndSurroundings(t *testing.T) {
	doc := "intro\n<!-- s:begin -->\nold\nstuff\n<!-- s:end -->\noutro\n"
	got, err := replace(doc, "s", "new\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "intro\n<!-- s:begin -->\nnew\n<!-- s:end -->\noutro\n"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	// Idempotent: a second run gives the same document.
	again, _ := replace(got, "s", "new\n")
	if again != got {
		t.Fatalf("second replace changed the document: %q", again)
	}
}

func TestReplaceMissingMarkers(t *testing.T) {
	for _, doc := range []string{"", "<!-- s:begin -->", "<!-- s:end --> <!-- s:begin -->"} {
		if _, err := replace(doc, "s", "x\n"); err == nil {
			t.Errorf("replace(%q) succeeded, want an error", doc)
		}
	}
}

func TestWithHeader(t *testing.T) {
	h := "| nr | name | support | note |"
	got := withHeader(h, "| 0 | read | full |  |\n")
	if !strings.HasPrefix(got, h+"\n|---|---|---|---|\n| 0 | read") {
		t.Fatalf("header not prepended: %q", got)
	}
	if again := withHeader(h, got); again != got {
		t.Fatalf("header added twice: %q", again)
	}
}

func TestUpdateFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "README.md")
	os.WriteFile(f, []byte("a\n<!-- x:begin -->\n<!-- x:end -->\nb\n"), 0o644)
	if err := update(f, "x", "", "row"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(f)
	if string(b) != "a\n<!-- x:begin -->\nrow\n<!-- x:end -->\nb\n" {
		t.Fatalf("file now %q", b)
	}
}
