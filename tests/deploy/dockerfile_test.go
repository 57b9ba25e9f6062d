package deploy

import (
	"errors"
	"fmt"
	"go/build"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// The one Dockerfile every skaffold artifact builds with (skaffold's default
// name, at the root of the context).
const dockerfileName = "Dockerfile"

// platformArgs are the build arguments BuildKit sets by itself.
var platformArgs = []string{
	"BUILDPLATFORM", "BUILDOS", "BUILDARCH", "BUILDVARIANT",
	"TARGETPLATFORM", "TARGETOS", "TARGETARCH", "TARGETVARIANT",
}

// dockerfile is the Dockerfile as BuildKit's own parser reads it.
type dockerfile struct {
	stages []instructions.Stage
	escape rune
	// args holds every ARG it declares, with its default (nil: none).
	args map[string]*string
}

func loadDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, w := range res.Warnings {
		t.Errorf("%s: %s", path, w.Short)
	}
	// The lint rules BuildKit applies while parsing (`docker build --check`:
	// FROM/AS casing, stage names, MAINTAINER) fail like a syntax error.
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		t.Errorf("%s:%d: %s: %s", path, line, rule, msg)
	}})
	stages, meta, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	df := dockerfile{stages: stages, escape: res.EscapeToken, args: map[string]*string{}}
	declare := func(c *instructions.ArgCommand) {
		for _, kv := range c.Args {
			// A later declaration with a default wins over one without.
			if old, ok := df.args[kv.Key]; !ok || old == nil {
				df.args[kv.Key] = kv.Value
			}
		}
	}
	for i := range meta {
		declare(&meta[i])
	}
	for _, s := range stages {
		for _, c := range s.Commands {
			if a, ok := c.(*instructions.ArgCommand); ok {
				declare(a)
			}
		}
	}
	return df
}

// artifactBuild is what one skaffold artifact hands the Dockerfile.
type artifactBuild struct {
	image, dockerfile string
	args              map[string]string
}

// checkArtifact returns what would break a build of a with df in the context
// root (.dockerignore already read into ignore).
func checkArtifact(df dockerfile, root string, ignore *patternmatcher.PatternMatcher, a artifactBuild) []string {
	var errs []string
	fail := func(format string, args ...any) {
		errs = append(errs, a.image+": "+fmt.Sprintf(format, args...))
	}
	if a.dockerfile != dockerfileName {
		fail("dockerfile %q, want the one %s at the repository root", a.dockerfile, dockerfileName)
	}
	lex := shell.NewLex(df.escape)
	var env []string
	for _, name := range slices.Sorted(maps.Keys(a.args)) {
		if _, ok := df.args[name]; !ok {
			fail("build argument %s is not an ARG of the Dockerfile (declared: %v)", name, declaredArgs(df))
		}
		env = append(env, name+"="+a.args[name])
	}
	for _, name := range slices.Sorted(maps.Keys(df.args)) {
		def := df.args[name]
		if _, given := a.args[name]; given {
			continue
		}
		if def == nil {
			if !slices.Contains(platformArgs, name) {
				fail("build argument %s is required (its ARG has no default) but not given", name)
			}
			continue
		}
		// A default is a shell word too (ARG X="" is empty).
		v, _, err := lex.ProcessWord(*def, shell.EnvsFromSlice(env))
		if err != nil {
			fail("ARG %s=%s: %v", name, *def, err)
		}
		env = append(env, name+"="+v)
	}
	vars := shell.EnvsFromSlice(env)

	if module, ok := a.args["MODULE"]; ok {
		errs = append(errs, checkModule(root, module, a.image)...)
	}
	for _, s := range df.stages {
		for _, c := range s.Commands {
			switch c := c.(type) {
			case *instructions.CopyCommand:
				if c.From != "" {
					continue // from another stage, not the context
				}
				for _, src := range c.SourcePaths {
					p, _, err := lex.ProcessWord(src, vars)
					if err != nil {
						fail("COPY %s: %v", src, err)
						continue
					}
					for _, msg := range checkCopySource(root, ignore, p) {
						fail("COPY %s (%s): %s", src, p, msg)
					}
				}
			case *instructions.ExposeCommand:
				for _, word := range c.Ports {
					ports, err := lex.ProcessWords(word, vars)
					if err != nil {
						fail("EXPOSE %s: %v", word, err)
					}
					for _, p := range ports {
						num, proto, _ := strings.Cut(p, "/")
						if n, err := strconv.Atoi(num); err != nil || n < 1 || n > 65535 || !slices.Contains([]string{"", "tcp", "udp"}, proto) {
							fail("EXPOSE %s: %q is not a port", word, p)
						}
					}
				}
			}
		}
	}
	return errs
}

func declaredArgs(df dockerfile) []string {
	var out []string
	for k := range df.args {
		if !slices.Contains(platformArgs, k) {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// checkModule: dir is a directory of the repository holding a go.mod and,
// at its root, package main (the binary the image runs).
func checkModule(root, dir, image string) []string {
	var errs []string
	fail := func(format string, args ...any) {
		errs = append(errs, image+": MODULE "+dir+": "+fmt.Sprintf(format, args...))
	}
	if dir == "" || filepath.IsAbs(dir) || path.Clean(dir) != dir || strings.HasPrefix(dir, "..") {
		fail("want a clean path relative to the repository root")
		return errs
	}
	if _, err := os.Stat(filepath.Join(root, dir, "go.mod")); err != nil {
		fail("no go.mod: %v", err)
	}
	// What the image's build sees: linux, no cgo.
	ctx := build.Default
	ctx.GOOS, ctx.CgoEnabled = "linux", false
	pkg, err := ctx.ImportDir(filepath.Join(root, dir), 0)
	switch {
	case err != nil:
		fail("%v", err)
	case pkg.Name != "main":
		fail("package %s, want main", pkg.Name)
	}
	return errs
}

// checkCopySource: src matches something in the build context that
// .dockerignore keeps, and, for a directory, every file its Go packages
// compile or embed is kept too.
func checkCopySource(root string, ignore *patternmatcher.PatternMatcher, src string) []string {
	matches, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(src)))
	if err != nil {
		return []string{err.Error()}
	}
	if len(matches) == 0 {
		return []string{"matches nothing in the build context"}
	}
	var errs []string
	kept := 0
	for _, m := range matches {
		rel, _ := filepath.Rel(root, m)
		if ignored(ignore, rel) {
			continue
		}
		kept++
		if fi, err := os.Stat(m); err == nil && fi.IsDir() {
			errs = append(errs, checkPackagesKept(root, ignore, m)...)
		}
	}
	if kept == 0 {
		errs = append(errs, ".dockerignore drops everything it matches")
	}
	return errs
}

func ignored(ignore *patternmatcher.PatternMatcher, rel string) bool {
	drop, err := ignore.MatchesOrParentMatches(filepath.ToSlash(rel))
	return err != nil || drop
}

// checkPackagesKept walks the Go packages below dir and names each source or
// embedded file that .dockerignore would keep out of the image's build.
func checkPackagesKept(root string, ignore *patternmatcher.PatternMatcher, dir string) []string {
	var errs []string
	ctx := build.Default
	ctx.GOOS, ctx.CgoEnabled = "linux", false
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if name := d.Name(); p != dir && (name == "testdata" || name == "node_modules" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		pkg, err := ctx.ImportDir(p, 0)
		var noGo *build.NoGoError
		if errors.As(err, &noGo) {
			return nil
		}
		if err != nil {
			errs = append(errs, err.Error())
			return nil
		}
		files := slices.Clone(pkg.GoFiles)
		for _, pattern := range pkg.EmbedPatterns {
			found, _ := filepath.Glob(filepath.Join(p, filepath.FromSlash(strings.TrimPrefix(pattern, "all:"))))
			for _, f := range found {
				files = append(files, embeddedFiles(p, f)...)
			}
		}
		for _, f := range files {
			rel, _ := filepath.Rel(root, filepath.Join(p, f))
			if ignored(ignore, rel) {
				errs = append(errs, fmt.Sprintf("%s is needed by package %s but .dockerignore drops it", filepath.ToSlash(rel), pkg.ImportPath))
			}
		}
		return nil
	})
	return errs
}

// embeddedFiles lists, relative to the package directory pkgDir, the files a
// //go:embed match stands for: the file itself, or every file below a
// directory (go:embed embeds a directory's files recursively, less the names
// starting with "." or "_" unless the pattern says all:, left out here).
func embeddedFiles(pkgDir, match string) []string {
	var out []string
	_ = filepath.WalkDir(match, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != match && (strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_")) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(pkgDir, p)
			out = append(out, rel)
		}
		return err
	})
	return out
}

func loadDockerignore(t *testing.T, root string) *patternmatcher.PatternMatcher {
	t.Helper()
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	return pm
}

func skaffoldBuilds(t *testing.T) []artifactBuild {
	t.Helper()
	var out []artifactBuild
	for _, a := range loadSkaffold(t).Build.Artifacts {
		df := a.Docker.Dockerfile
		if df == "" {
			df = dockerfileName // skaffold's default
		}
		out = append(out, artifactBuild{image: a.Image, dockerfile: df, args: a.Docker.BuildArgs})
	}
	return out
}

// TestDockerfileBuildsEveryArtifact: the one Dockerfile parses with
// BuildKit's parser, and each skaffold artifact would build with it: it
// passes only build arguments the Dockerfile declares and every one it
// requires, its MODULE is a Go module whose root package is main, its ports
// are ports, and every COPY source exists in the context and survives
// .dockerignore (with the Go files and embeds of the packages below it).
func TestDockerfileBuildsEveryArtifact(t *testing.T) {
	root := repoRoot()
	df := loadDockerfile(t, filepath.Join(root, dockerfileName))
	ignore := loadDockerignore(t, root)
	modules := map[string]string{}
	for _, a := range skaffoldBuilds(t) {
		t.Run(a.image, func(t *testing.T) {
			for _, msg := range checkArtifact(df, root, ignore, a) {
				t.Error(msg)
			}
		})
		if m := a.args["MODULE"]; m != "" {
			if other, dup := modules[m]; dup {
				t.Errorf("artifacts %s and %s both build MODULE %s", other, a.image, m)
			}
			modules[m] = a.image
		}
	}

	// One Dockerfile per kind of image: no other Dockerfile drifts on its own.
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !d.IsDir() && (d.Name() == "Dockerfile" || strings.HasSuffix(d.Name(), ".Dockerfile")) {
			if rel, _ := filepath.Rel(root, p); rel != dockerfileName {
				t.Errorf("%s: no skaffold artifact builds with it; every image builds with %s", rel, dockerfileName)
			}
		}
		return nil
	})
}

// TestDockerfileChecksCatchTypos proves the checks above are not vacuous:
// each broken artifact is reported with the expected reason.
func TestDockerfileChecksCatchTypos(t *testing.T) {
	root := repoRoot()
	df := loadDockerfile(t, filepath.Join(root, dockerfileName))
	ignore := loadDockerignore(t, root)
	good := artifactBuild{image: "courier-ws-edge", dockerfile: dockerfileName,
		args: map[string]string{"MODULE": "services/ws-edge", "PORTS": "8081", "VERSION": "v1"}}
	if errs := checkArtifact(df, root, ignore, good); len(errs) != 0 {
		t.Fatalf("a good artifact is refused: %v", errs)
	}
	with := func(change func(a *artifactBuild)) artifactBuild {
		a := good
		a.args = maps.Clone(good.args)
		change(&a)
		return a
	}
	for _, tc := range []struct {
		name, want string
		a          artifactBuild
	}{
		{"misspelt module", "matches nothing in the build context",
			with(func(a *artifactBuild) { a.args["MODULE"] = "services/ws-egde" })},
		{"module without a root package", "no buildable Go source files",
			with(func(a *artifactBuild) { a.args["MODULE"] = "pkg" })},
		{"module whose root package is not main", "package deploy, want main",
			with(func(a *artifactBuild) { a.args["MODULE"] = "tests/deploy" })},
		{"directory without go.mod", "no go.mod",
			with(func(a *artifactBuild) { a.args["MODULE"] = "services/ws-edge/internal" })},
		{"module outside the context", "clean path relative to the repository root",
			with(func(a *artifactBuild) { a.args["MODULE"] = "../courier/services/ws-edge" })},
		{"misspelt argument", "build argument MODUEL is not an ARG",
			with(func(a *artifactBuild) { a.args["MODUEL"] = a.args["MODULE"]; delete(a.args, "MODULE") })},
		{"required argument missing", "build argument MODULE is required",
			with(func(a *artifactBuild) { delete(a.args, "MODULE") })},
		{"not a port", `"80a" is not a port`,
			with(func(a *artifactBuild) { a.args["PORTS"] = "8081 80a" })},
		{"another Dockerfile", "want the one Dockerfile",
			with(func(a *artifactBuild) { a.dockerfile = "services/ws-edge/Dockerfile" })},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := checkArtifact(df, root, ignore, tc.a)
			if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, tc.want) }) {
				t.Fatalf("reported %q, want a message containing %q", errs, tc.want)
			}
			t.Logf("caught: %s", errs[0])
		})
	}

	// A .dockerignore that drops a file a package embeds is caught.
	strict, err := patternmatcher.New([]string{"**/*.html"})
	if err != nil {
		t.Fatal(err)
	}
	errs := checkArtifact(df, root, strict, good)
	if !slices.ContainsFunc(errs, func(e string) bool { return strings.Contains(e, "but .dockerignore drops it") }) {
		t.Errorf("a .dockerignore dropping embedded files: reported %q", errs)
	}
}
