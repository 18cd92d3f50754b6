app.registerExtension({name: "web_only.hello"});
