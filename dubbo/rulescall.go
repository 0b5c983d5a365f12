package dubbo

import (
	"fmt"

	"github.com/meshgate/meshgate/dubbo/rules"
)

// RulesCall is a call as Dubbo's traffic rules see it: its method, its
// arguments as text (arguments[N] rules compare strings), its attachments,
// and the consumer (meshgate) that makes it.
func RulesCall(method string, args []any, attachments map[string]string) *rules.Call {
	texts := make([]string, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case string:
			texts[i] = v
		case nil:
			texts[i] = ""
		default:
			texts[i] = fmt.Sprint(v)
		}
	}
	return &rules.Call{Method: method, Arguments: texts, Attachments: attachments,
		Consumer: map[string]string{"application": rules.ConsumerApplication}}
}
