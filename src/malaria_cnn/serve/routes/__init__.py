"""The app's routes, one router per resource: pages, status, slides, photos, cells and export. Each reads the
workspace through the Context the app keeps (context.py), where the JSON records are shaped too."""
