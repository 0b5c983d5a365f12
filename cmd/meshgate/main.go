// Command meshgate is the gateway binary: `meshgate run`, `meshgate
// validate` and `meshgate version` (package cli).
package main

import "github.com/meshgate/meshgate/cmd/meshgate/cli"

func main() { cli.Main() }
