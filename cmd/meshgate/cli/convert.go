package cli

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/meshgate/meshgate/convert/pixiu"
)

const convertUsage = `Usage: meshgate convert pixiu -c conf.yaml [-api api_config.yaml] [-o out.yaml]
`

// convertCmd converts another gateway's config into meshgate's friendly
// YAML; what has no equivalent is printed as warnings on stderr (and kept as
// comments at the top of the output).
func convertCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "pixiu" {
		fmt.Fprint(stderr, "meshgate convert: the source format is required (pixiu)\n"+convertUsage)
		return 2
	}
	fs := flag.NewFlagSet("convert pixiu", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conf := fs.String("c", "", "Pixiu conf.yaml to convert")
	api := fs.String("api", "", "Pixiu api config (default: the file the apiconfig filter names)")
	out := fs.String("o", "", "write the meshgate config here (default: stdout)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *conf == "" || fs.NArg() > 0 {
		fmt.Fprint(stderr, "meshgate convert pixiu: -c conf.yaml is required, and nothing else\n"+convertUsage)
		return 2
	}
	res, err := pixiu.ConvertFile(*conf, *api)
	if err != nil {
		fmt.Fprintf(stderr, "meshgate convert pixiu: %v\n", err)
		return 1
	}
	text, err := res.YAML()
	if err != nil {
		fmt.Fprintf(stderr, "meshgate convert pixiu: %v\n", err)
		return 1
	}
	for _, w := range res.Warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	if *out == "" {
		_, err = stdout.Write(text)
	} else {
		err = os.WriteFile(*out, text, 0o644)
	}
	if err != nil {
		fmt.Fprintf(stderr, "meshgate convert pixiu: write: %v\n", err)
		return 1
	}
	return 0
}
