// Command render writes the chart's default objects as plain manifests
// (deploy/kubernetes/meshgate.yaml), decoding each strictly first.
//
//	go run ./cmd/render -chart ../meshgate -out ../../kubernetes/meshgate.yaml
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/meshgate/meshgate/deploy/helm/charttest"
)

func main() {
	chartDir := flag.String("chart", "../meshgate", "the chart's directory")
	out := flag.String("out", "../../kubernetes/meshgate.yaml", "the file to write (- for stdout)")
	flag.Parse()
	objs, err := charttest.Render(*chartDir, charttest.DefaultRelease, nil)
	if err == nil {
		for _, o := range objs {
			if _, err = charttest.Decode(o); err != nil {
				break
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
	data := charttest.Manifest(charttest.ManifestHeader, objs)
	if *out == "-" {
		_, err = os.Stdout.Write(data)
	} else {
		err = os.WriteFile(*out, data, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
	if *out != "-" {
		fmt.Printf("wrote %s (%d objects)\n", *out, len(objs))
	}
}
