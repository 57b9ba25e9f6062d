package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// TestIndexCommandsMatchIndexFile: docs/deploy.md applies
// docs/firestore.indexes.json with gcloud (there is no firebase.json), one
// command per field override and one per composite index, and nothing else.
func TestIndexCommandsMatchIndexFile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(), "docs/firestore.indexes.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Indexes []struct {
			CollectionGroup string `json:"collectionGroup"`
		} `json:"indexes"`
		FieldOverrides []struct {
			CollectionGroup string `json:"collectionGroup"`
			FieldPath       string `json:"fieldPath"`
			Indexes         []any  `json:"indexes"`
		} `json:"fieldOverrides"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Indexes) > 0 {
		t.Errorf("docs/firestore.indexes.json declares %d composite indexes: add their `gcloud firestore indexes composite create` commands to docs/deploy.md and to this test", len(file.Indexes))
	}
	var want []string
	for _, o := range file.FieldOverrides {
		if len(o.Indexes) != 0 {
			t.Errorf("%s.%s: only exemptions (indexes: []) are applied by docs/deploy.md", o.CollectionGroup, o.FieldPath)
		}
		want = append(want, o.FieldPath+" "+o.CollectionGroup)
	}
	doc, err := os.ReadFile(filepath.Join(repoRoot(), "docs/deploy.md"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := regexp.MustCompile(`(?m)^gcloud firestore indexes fields update (\S+) --collection-group=(\S+) --disable-indexes$`)
	var got []string
	for _, m := range cmd.FindAllStringSubmatch(string(doc), -1) {
		got = append(got, m[1]+" "+m[2])
	}
	sort.Strings(want)
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("docs/deploy.md's commands:\n%s\nthe index file's overrides:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(string(doc), "firebase deploy") {
		t.Error("docs/deploy.md still says `firebase deploy`, which needs a firebase.json the repository does not have")
	}
}
