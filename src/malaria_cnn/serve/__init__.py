"""`malaria-cnn serve`: screen a slide's photos in a browser, review the model's calls, export the corrections.

store (the workspace's SQLite state), limits and uploads (what is accepted, stored under ids), worker
(screening in the background by `screen`'s own path), summary (the model's answer beside the reviewed
figures), explain (Grad-CAM of a cell), export (the corrections as training data), app (the pages and
their JSON endpoints); templates/ and static/ are the pages themselves.
"""
