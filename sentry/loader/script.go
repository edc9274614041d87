package loader

import (
	"golang.org/x/sys/unix"
)

const (
	// binprmBufSize is how much of a file execve looks at to recognise
	// it: a `#!` line longer than this is truncated (BINPRM_BUF_SIZE).
	binprmBufSize = 256

	// maxInterpDepth is how many times execve lets one binary hand over to
	// another (`#!` interpreters) before it gives up with ELOOP. Linux's
	// exec_binprm allows handler depths 0 through 5, so a chain of five
	// scripts ending in an ELF file runs and a chain of six does not.
	maxInterpDepth = 5
)

// resolveScripts follows `#!` lines from f, which was opened as path, until
// it reaches a file that is not a script. It returns that file (f itself if
// f is no script; the loader owns it and must close it), its path and the
// argument vector as rewritten by every `#!` line. Files it opens and
// passes over are closed; on error nothing stays open.
func resolveScripts(o Opener, f File, path string, argv []string) (File, string, []string, error) {
	for depth := 0; ; depth++ {
		if depth > maxInterpDepth {
			f.Close()
			return nil, "", nil, unix.ELOOP
		}
		var buf [binprmBufSize]byte
		if _, err := readFull(f, buf[:], 0); err != nil {
			f.Close()
			return nil, "", nil, err
		}
		name, arg, isScript, err := parseShebang(&buf)
		if !isScript {
			return f, path, argv, nil
		}
		f.Close()
		if err != nil {
			return nil, "", nil, err
		}
		next := make([]string, 0, len(argv)+2)
		next = append(next, name)
		if arg != "" {
			next = append(next, arg)
		}
		next = append(next, path)
		next = append(next, argv[1:]...)
		argv = next
		path = name
		if f, err = o.Open(name); err != nil {
			return nil, "", nil, err
		}
	}
}

func spacetab(c byte) bool { return c == ' ' || c == '\t' }

// nextNonSpacetab returns the first index in [first, last] that is not a
// space or tab, or -1.
func nextNonSpacetab(buf *[binprmBufSize]byte, first, last int) int {
	for ; first <= last; first++ {
		if !spacetab(buf[first]) {
			return first
		}
	}
	return -1
}

// nextTerminator returns the first index in [first, last] holding a space,
// a tab or a NUL, or -1.
func nextTerminator(buf *[binprmBufSize]byte, first, last int) int {
	for ; first <= last; first++ {
		if spacetab(buf[first]) || buf[first] == 0 {
			return first
		}
	}
	return -1
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// parseShebang parses a `#!` line the way Linux's binfmt_script does: the
// interpreter path is the first word after `#!` (leading blanks skipped),
// and everything after it up to the end of the line, with blanks trimmed at
// both ends, is one optional argument. A line that does not end within the
// buffer is accepted only if the interpreter path visibly ends inside it,
// so that a truncated path is never run. buf is the file's first bytes,
// zero-padded; parseShebang writes terminators into it.
func parseShebang(buf *[binprmBufSize]byte) (name, arg string, isScript bool, err error) {
	if buf[0] != '#' || buf[1] != '!' {
		return "", "", false, nil
	}
	bufEnd := binprmBufSize - 1
	iEnd := -1
	for i := 0; i < binprmBufSize && buf[i] != 0; i++ {
		if buf[i] == '\n' {
			iEnd = i
			break
		}
	}
	if iEnd < 0 {
		iEnd = nextNonSpacetab(buf, 2, bufEnd)
		if iEnd < 0 {
			return "", "", true, unix.ENOEXEC
		}
		if nextTerminator(buf, iEnd, bufEnd) < 0 {
			return "", "", true, unix.ENOEXEC
		}
		iEnd = bufEnd
	}
	for spacetab(buf[iEnd-1]) {
		iEnd--
	}
	iName := nextNonSpacetab(buf, 2, iEnd)
	if iName < 0 || iName == iEnd {
		return "", "", true, unix.ENOEXEC
	}
	iArg := -1
	iSep := nextTerminator(buf, iName, iEnd)
	if iSep >= 0 && buf[iSep] != 0 {
		iArg = nextNonSpacetab(buf, iSep, iEnd)
	}
	buf[iEnd] = 0
	if iArg >= 0 {
		buf[iSep] = 0
		arg = cString(buf[iArg:])
	}
	name = cString(buf[iName:])
	if name == "" {
		return "", "", true, unix.ENOEXEC
	}
	return name, arg, true, nil
}
