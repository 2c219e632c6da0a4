"""`malaria-cnn serve`: screen a slide's photos in a browser, review the model's calls, export the corrections.

store (the workspace's SQLite state), limits, upload_stream and uploads (what is accepted, read as it
arrives, stored under ids), worker (screening in the background by `screen`'s own path), summary (the
model's answer beside the reviewed figures), explain (Grad-CAM of a cell), export (the corrections as
training data), guard (every security check), routes/ (one router per resource) and app (the workspace,
its model and the routers together); templates/ and static/ are the pages themselves.
"""
