"""`python -m playlist_cron` is the same program as `playlist-cron`."""

from playlist_cron.cli import main

raise SystemExit(main())
