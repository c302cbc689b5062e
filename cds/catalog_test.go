package cds_test

import (
	"slices"
	"testing"

	"github.com/orthotriage/orthotriage/cds"
)

// A precompute job analyses its study for each task offered, once.
func TestCatalogTasks(t *testing.T) {
	c := cds.NewCatalog(cds.Service{ID: "b", Task: "hip"}, cds.Service{ID: "a", Task: "vertebral-fracture-acuity"}, cds.Service{ID: "c", Task: "hip"})
	if got, want := c.Tasks(), []string{"hip", "vertebral-fracture-acuity"}; !slices.Equal(got, want) {
		t.Errorf("Tasks() = %v, want %v", got, want)
	}
	if got := cds.DefaultCatalog().Tasks(); len(got) != 2 {
		t.Errorf("the default catalog's tasks: %v", got)
	}
}
