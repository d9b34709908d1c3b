package main

import (
	"path/filepath"
	"strings"
)

// checkChartName accepts the file names --chart can draw: .svg or .png.
func checkChartName(name string) error {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".svg", ".png":
		return nil
	}
	return usageErrorf("--chart %s: the name must end in .svg or .png", name)
}
