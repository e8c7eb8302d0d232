// Command banner prints the URLs of the compose stack, once `docker
// compose up --wait` has seen every service healthy (`make compose-up`).
package main

import (
	"os"

	"github.com/flashsale/flashsale/deploy/local"
)

func main() {
	local.Banner(os.Stdout, "flashsale is up (docker compose)", local.ComposeLinks,
		"Replay the sale: docker compose run --rm loadtest. Logs: docker compose logs -f. Stop: docker compose down.")
}
