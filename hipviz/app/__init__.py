"""The hipviz web app (Panel). The library never imports this package."""
