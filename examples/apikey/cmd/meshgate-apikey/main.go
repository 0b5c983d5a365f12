// Command meshgate-apikey is meshgate built with the example API key
// filter: the whole of a custom build is this main.
package main

import (
	"github.com/meshgate/meshgate/cmd/meshgate/cli"
	_ "github.com/meshgate/meshgate/examples/apikey"
)

func main() { cli.Main() }
