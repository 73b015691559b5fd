"""pggan-explore: a local web page (and HTTP endpoints) to browse, pick, morph and edit a generator's faces."""
