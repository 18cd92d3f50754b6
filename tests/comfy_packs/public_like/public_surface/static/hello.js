// served by the pack's app.add_routes static folder
