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
// command per field override, one per composite index and one TTL policy per
// TTL field, and nothing else.
func TestIndexCommandsMatchIndexFile(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(), "docs/firestore.indexes.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Indexes []struct {
			CollectionGroup string `json:"collectionGroup"`
			QueryScope      string `json:"queryScope"`
			Fields          []struct {
				FieldPath string `json:"fieldPath"`
				Order     string `json:"order"`
			} `json:"fields"`
		} `json:"indexes"`
		FieldOverrides []struct {
			CollectionGroup string `json:"collectionGroup"`
			FieldPath       string `json:"fieldPath"`
			Indexes         []any  `json:"indexes"`
			TTL             bool   `json:"ttl"`
		} `json:"fieldOverrides"`
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(repoRoot(), "docs/deploy.md"))
	if err != nil {
		t.Fatal(err)
	}
	// One `composite create` line per composite index, fields in order.
	for _, ix := range file.Indexes {
		line := "gcloud firestore indexes composite create --collection-group=" + ix.CollectionGroup + " --query-scope=" + ix.QueryScope
		for _, f := range ix.Fields {
			line += " --field-config=field-path=" + f.FieldPath + ",order=" + strings.ToLower(f.Order)
		}
		if !strings.Contains(string(doc), "\n"+line+"\n") {
			t.Errorf("docs/deploy.md lacks the line\n%s", line)
		}
	}
	var want []string
	for _, o := range file.FieldOverrides {
		if len(o.Indexes) != 0 {
			t.Errorf("%s.%s: only exemptions (indexes: []) are applied by docs/deploy.md", o.CollectionGroup, o.FieldPath)
		}
		want = append(want, o.FieldPath+" "+o.CollectionGroup)
		ttl := "gcloud firestore fields ttls update " + o.FieldPath + " --collection-group=" + o.CollectionGroup + " --enable-ttl"
		if o.TTL && !strings.Contains(string(doc), "\n"+ttl+"\n") {
			t.Errorf("docs/deploy.md lacks the TTL policy line\n%s", ttl)
		}
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
