// The browser half of hipviz.app.viewer.SceneView: a vtk.js scene driven by
// the component's parameters (small state) and by messages (mesh arrays).
//
// Coordinates are the scene's RAS millimetres. Python sends matrices
// row-major; vtk.js keeps user matrices column-major, hence `colMajor`.
//
// Messages from Python: {type: "mesh", name, points, triangles, colors, smooth}
// (typed arrays, sent as binary buffers), {type: "copy", name, source} (the
// geometry of mesh `source`, already here), {type: "colors", name, colors},
// {type: "remove", name}, {type: "synced"} (a batch of meshes is complete:
// they are drawn together),
// {type: "reset_camera"}, {type: "screenshot", id}. To Python: {type: "ready"}
// on start, {type: "screenshot", id, png} (base64) or {..., error}, and
// {type: "camera", position, focal_point, view_up, view_angle} a moment after
// the camera comes to rest (what the exports draw from).
//
// window.__hipvizTimes logs, for each change, when its message arrived (recv)
// and when the frame showing it was drawn (frame), both performance.now() ms;
// firstPicture is the frame that first showed every mesh.

const MAX_TIMES = 500
const IDENTITY = new Float64Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1])

// Log of arrival -> rendered-frame times, read by scripts/bench_viewer.py.
function timesLog() {
  if (window.__hipvizTimes == null) {
    window.__hipvizTimes = {events: [], firstPicture: null, frames: 0}
  }
  return window.__hipvizTimes
}

function hexToRgb(hex, fallback) {
  if (typeof hex !== "string" || !/^#[0-9a-fA-F]{6}$/.test(hex)) {
    return fallback
  }
  return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255)
}

function colMajor(m) {
  if (m == null || m.length !== 16) {
    return null
  }
  const out = new Float64Array(16)
  for (let r = 0; r < 4; r++) {
    for (let c = 0; c < 4; c++) {
      out[c * 4 + r] = Number(m[r * 4 + c])
    }
  }
  return out
}

function applyRowMajor(m, p) {
  // m: 16 numbers row-major, p: [x, y, z] -> transformed point
  if (m == null || m.length !== 16) {
    return p
  }
  const out = [0, 0, 0]
  for (let r = 0; r < 3; r++) {
    out[r] = m[r * 4] * p[0] + m[r * 4 + 1] * p[1] + m[r * 4 + 2] * p[2] + m[r * 4 + 3]
  }
  return out
}

function typed(Ctor, arr) {
  // Bokeh hands over its own typed-array subclasses; vtk.js wants plain ones.
  if (arr instanceof Ctor && arr.constructor === Ctor) {
    return arr
  }
  if (ArrayBuffer.isView(arr)) {
    return new Ctor(arr.buffer, arr.byteOffset, arr.byteLength / Ctor.BYTES_PER_ELEMENT)
  }
  return Ctor.from(arr)
}

function trianglesToPolys(tri) {
  const m = tri.length / 3
  const polys = new Uint32Array(m * 4)
  for (let i = 0, j = 0, k = 0; i < m; i++) {
    polys[j++] = 3
    polys[j++] = tri[k++]
    polys[j++] = tri[k++]
    polys[j++] = tri[k++]
  }
  return polys
}

function vertexNormals(points, tri) {
  // Area-weighted vertex normals, for smooth shading of the bones.
  const normals = new Float32Array(points.length)
  for (let k = 0; k < tri.length; k += 3) {
    const a = 3 * tri[k], b = 3 * tri[k + 1], c = 3 * tri[k + 2]
    const ux = points[b] - points[a], uy = points[b + 1] - points[a + 1], uz = points[b + 2] - points[a + 2]
    const vx = points[c] - points[a], vy = points[c + 1] - points[a + 1], vz = points[c + 2] - points[a + 2]
    const nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx
    for (const i of [a, b, c]) {
      normals[i] += nx
      normals[i + 1] += ny
      normals[i + 2] += nz
    }
  }
  for (let i = 0; i < normals.length; i += 3) {
    const len = Math.hypot(normals[i], normals[i + 1], normals[i + 2]) || 1
    normals[i] /= len
    normals[i + 1] /= len
    normals[i + 2] /= len
  }
  return normals
}

// Camera presets, RAS. `dir` points from the focal point to the camera.
function presetDirection(view, side) {
  const lateral = side === "right" ? 1 : -1  // +x is the patient's right
  const turn = (Math.PI / 180) * 65
  switch (view) {
    case "lateral":
      return {dir: [lateral, 0, 0], up: [0, 0, 1]}
    case "superior":
      return {dir: [0, 0, 1], up: [0, 1, 0]}
    case "false_profile":
      // Lequesne's false profile: the pelvis turned 65 degrees to the film,
      // i.e. the anterior view turned 65 degrees about S toward the hip's side.
      return {dir: [lateral * Math.sin(turn), Math.cos(turn), 0], up: [0, 0, 1]}
    default:  // anterior
      return {dir: [0, 1, 0], up: [0, 0, 1]}
  }
}

// --- labels: none over another, none over the point another one names ---------
//
// Each label starts just right of its anchor (left of it at the view's right
// edge), centred on it vertically. In
// order from the top, a label that overlaps a label already placed, or covers
// an anchor (where an angle line ends, a landmark), moves down past it, and
// again until it is clear; it moves only down, so this ends. A label moved off
// its anchor is joined to it by a thin leader line.
const LABEL_GAP = 2  // px between two labels
const ANCHOR_R = 4  // px: the square about an anchor no label may cover

function overlaps(a, b) {
  return a.left < b.left + b.w && b.left < a.left + a.w && a.top < b.top + b.h && b.top < a.top + a.h
}

function spreadLabels(items, width) {
  const anchors = items.map((it) => ({
    left: it.x - ANCHOR_R, top: it.y - ANCHOR_R, w: 2 * ANCHOR_R, h: 2 * ANCHOR_R,
  }))
  const order = [...items].sort((a, b) => a.y - b.y || a.x - b.x)
  const placed = []
  for (const it of order) {
    // right of its anchor, or left of it where it would run off the view
    it.left = it.x + 6 + it.w > width && it.x - 6 - it.w >= 0 ? it.x - 6 - it.w : it.x + 6
    it.top = it.y - it.h / 2
    const box = {left: it.left - LABEL_GAP, top: it.top, w: it.w + 2 * LABEL_GAP, h: it.h + LABEL_GAP}
    for (let moved = true, guard = 0; moved && guard < 4 * items.length + 4; guard++) {
      moved = false
      for (const other of [...placed, ...anchors]) {
        if (overlaps(box, other)) {
          box.top = other.top + other.h + 0.5
          moved = true
        }
      }
    }
    it.top = box.top
    placed.push({left: it.left, top: it.top, w: it.w, h: it.h + LABEL_GAP})
  }
  return items
}

function drawLeaders(svg, items) {
  const lines = []
  for (const it of items) {
    const mid = it.top + it.h / 2
    if (Math.abs(mid - it.y) > 2) {
      const x2 = it.left > it.x ? it.left : it.left + it.w
      lines.push(`<line x1="${it.x}" y1="${it.y}" x2="${x2}" y2="${mid}" stroke="#555" stroke-width="1"/>`)
    }
  }
  svg.innerHTML = lines.join("")
}

// --- camera linking: views of one page with the same `camera_link` turn together
// (Explain's before | after). Each view's camera, when it changes, is copied to
// the others' and they are drawn again; a copy made into a view does not travel
// on from it. A view that joins takes the camera of one already there.
function copyCamera(from, to) {
  to.setPosition(...from.getPosition())
  to.setFocalPoint(...from.getFocalPoint())
  to.setViewUp(...from.getViewUp())
  to.setViewAngle(from.getViewAngle())
  to.setParallelScale(from.getParallelScale())
}

function linkCamera(model, camera, redraw) {
  if (window.__hipvizLinks == null) {
    window.__hipvizLinks = new Map()  // link name -> Set of members
  }
  const registry = window.__hipvizLinks
  const member = {camera, redraw, copying: false, adopted: false}
  let group = null
  function leave() {
    if (group != null) {
      group.delete(member)
      group = null
    }
  }
  function join() {
    leave()
    if (!model.camera_link) {
      return
    }
    group = registry.get(model.camera_link)
    if (group == null) {
      group = new Set()
      registry.set(model.camera_link, group)
    }
    for (const other of group) {
      member.copying = true
      try {
        copyCamera(other.camera, camera)
      } finally {
        member.copying = false
      }
      member.adopted = true
      redraw()
      break
    }
    group.add(member)
  }
  const sub = camera.onModified(() => {
    if (group == null || member.copying) {
      return
    }
    for (const other of group) {
      if (other === member) {
        continue
      }
      other.copying = true
      try {
        copyCamera(camera, other.camera)
      } finally {
        other.copying = false
      }
      other.redraw()
    }
  })
  join()
  model.on("camera_link", join)
  return {
    adopted: () => member.adopted,
    dispose() {
      leave()
      sub.unsubscribe()
    },
  }
}

// A line of text over the view's top-left corner ("" shows none).
function showCaption(div, text) {
  div.textContent = text || ""
  div.style.display = text ? "" : "none"
}

// --- the first message: "ready" asks Python for every mesh. A view added to a
// page already open (Explain's "before") can send it before the server knows
// the view, and it is lost; so it is sent again every 2 s until Python answers
// (a repeat that crossed the answer is ignored there).
function askForMeshes(model) {
  // the same name on every try: Python answers a view once, however slow it is
  const view = Math.random().toString(36).slice(2)
  let answered = false
  let tries = 0
  model.on("msg:custom", () => {
    answered = true
  })
  const ask = () => {
    if (!answered && tries++ < 15) {
      model.send_msg({type: "ready", view})
    }
    if (answered || tries >= 15) {
      clearInterval(timer)
    }
  }
  const timer = setInterval(ask, 2000)
  ask()
  return {stop: () => clearInterval(timer)}
}

export function render({model}) {
  const vtk = window.vtk
  const root = document.createElement("div")
  root.className = "hipviz-scene"
  root.style.cssText = "position:relative;width:100%;height:100%;overflow:hidden;"
  if (vtk == null) {
    root.textContent = "hipviz: vtk.js did not load."
    return root
  }
  const host = document.createElement("div")
  host.style.cssText = "position:absolute;inset:0;"
  // Touch needs nothing here: vtk.js's interactor reads pointer events (one
  // finger turns, two pinch to zoom or pan) and sets touch-action: none on
  // `host`, so the browser does not take those gestures to scroll the page.
  // The layers over the view let pointers through (pointer-events: none).
  const labelLayer = document.createElement("div")
  labelLayer.style.cssText = "position:absolute;inset:0;pointer-events:none;overflow:hidden;"
  const leaderLayer = document.createElementNS("http://www.w3.org/2000/svg", "svg")
  leaderLayer.style.cssText = "position:absolute;inset:0;width:100%;height:100%;pointer-events:none;"
  const caption = document.createElement("div")
  caption.className = "hv-caption"
  caption.style.cssText = (
    "position:absolute;left:8px;top:6px;font:600 16px sans-serif;color:#2f4f6f;" +
    "background:rgba(255,255,255,0.8);padding:2px 8px;border-radius:4px;pointer-events:none;"
  )
  showCaption(caption, model.caption)
  root.append(host, leaderLayer, labelLayer, caption)

  const grw = vtk.Rendering.Misc.vtkGenericRenderWindow.newInstance({
    background: hexToRgb(model.background_color, [1, 1, 1]),
    listenWindowResize: false,
  })
  const renderer = grw.getRenderer()
  const renderWindow = grw.getRenderWindow()
  const glWindow = grw.getApiSpecificRenderWindow()
  // Overlay lines that must stay visible through bone live in a second layer.
  const topRenderer = vtk.Rendering.Core.vtkRenderer.newInstance()
  topRenderer.setLayer(1)
  topRenderer.setInteractive(false)
  topRenderer.setPreserveColorBuffer(true)
  topRenderer.setActiveCamera(renderer.getActiveCamera())
  renderWindow.setNumberOfLayers(2)
  renderWindow.addRenderer(topRenderer)

  const actors = new Map()  // name -> {actor, mapper, polydata, nPoints}
  const lineActors = new Map()  // name -> {actor, renderer}
  const labelDivs = new Map()  // name -> div
  let destroyed = false
  let framePending = false
  let pendingEvents = []
  let cameraSet = false
  let glReady = false

  // --- rendering ----------------------------------------------------------

  function requestRender(kind, recv) {
    if (kind != null) {
      pendingEvents.push({kind, recv: recv ?? performance.now()})
    }
    if (framePending || destroyed) {
      return
    }
    framePending = true
    requestAnimationFrame(() => {
      framePending = false
      if (destroyed || !glReady) {
        return
      }
      resetClippingRange()
      renderWindow.render()
      placeLabels()
      const now = performance.now()
      const log = timesLog()
      log.frames += 1
      for (const ev of pendingEvents) {
        ev.frame = now
        log.events.push(ev)
        // the first frame with bone in it (a page whose hip is still being
        // built is synced with no meshes)
        if (ev.kind === "synced" && log.firstPicture == null && actors.size > 0) {
          log.firstPicture = now
        }
      }
      if (log.events.length > MAX_TIMES) {
        log.events.splice(0, log.events.length - MAX_TIMES)
      }
      pendingEvents = []
    })
  }

  function resetClippingRange() {
    // Moved actors and overlay lines must not be clipped by the near/far planes.
    const b = renderer.computeVisiblePropBounds()
    const t = topRenderer.computeVisiblePropBounds()
    for (let i = 0; i < 6; i += 2) {
      if (t[i] <= t[i + 1]) {
        b[i] = Math.min(b[i], t[i])
        b[i + 1] = Math.max(b[i + 1], t[i + 1])
      }
    }
    if (b[0] <= b[1]) {
      renderer.resetCameraClippingRange(b)
    }
  }

  let drawnSize = null
  function resize() {
    const rect = host.getBoundingClientRect()
    if (rect.width < 2 || rect.height < 2) {
      return
    }
    // Bokeh lays the page out again whenever any pane's text changes (the
    // measures table, every move); re-rendering the 3D view for that would
    // cost a whole frame each time.
    const size = `${rect.width}x${rect.height}x${window.devicePixelRatio}`
    if (size === drawnSize) {
      return
    }
    drawnSize = size
    grw.resize()
    glReady = true
    requestRender()
  }

  // --- meshes -------------------------------------------------------------

  function applyStyle(name) {
    const entry = actors.get(name)
    if (entry == null) {
      return
    }
    const style = (model.actors || {})[name] || {}
    const prop = entry.actor.getProperty()
    prop.setColor(...hexToRgb(style.color, [0.91, 0.86, 0.78]))
    prop.setOpacity(style.opacity == null ? 1 : Number(style.opacity))
    prop.setAmbient(0.12)
    prop.setDiffuse(0.88)
    prop.setSpecular(0.15)
    prop.setSpecularPower(20)
    entry.actor.setVisibility(style.visible == null ? true : Boolean(style.visible))
    entry.mapper.setScalarVisibility(entry.hasColors && style.use_colors !== false)
  }

  function applyMatrix(name) {
    const entry = actors.get(name)
    if (entry == null) {
      return
    }
    const m = colMajor((model.matrices || {})[name])
    entry.actor.setUserMatrix(m == null ? IDENTITY : m)
  }

  function setColors(entry, colors) {
    const pd = entry.polydata
    if (colors == null || colors.length !== entry.nPoints * 3) {
      pd.getPointData().setScalars(null)
      entry.hasColors = false
      return
    }
    const arr = vtk.Common.Core.vtkDataArray.newInstance({
      name: "colors", numberOfComponents: 3, values: typed(Uint8Array, colors),
    })
    pd.getPointData().setScalars(arr)
    entry.hasColors = true
    pd.modified()
  }

  function meshEntry(name) {
    let entry = actors.get(name)
    if (entry == null) {
      const polydata = vtk.Common.DataModel.vtkPolyData.newInstance()
      const mapper = vtk.Rendering.Core.vtkMapper.newInstance()
      mapper.setInputData(polydata)
      mapper.setColorModeToDirectScalars()
      mapper.setScalarModeToUsePointData()
      const actor = vtk.Rendering.Core.vtkActor.newInstance()
      actor.setMapper(mapper)
      renderer.addActor(actor)
      entry = {actor, mapper, polydata, nPoints: 0, hasColors: false}
      actors.set(name, entry)
    }
    return entry
  }

  function setMesh(msg) {
    const entry = meshEntry(msg.name)
    const points = typed(Float32Array, msg.points)
    entry.nPoints = points.length / 3
    const pd = entry.polydata
    const tri = typed(Int32Array, msg.triangles)
    pd.getPoints().setData(points, 3)
    pd.getPolys().setData(trianglesToPolys(tri))
    // Without normals vtk.js shades each triangle flat.
    pd.getPointData().setNormals(msg.smooth === false ? null : vtk.Common.Core.vtkDataArray.newInstance({
      name: "normals", numberOfComponents: 3, values: vertexNormals(points, tri),
    }))
    setColors(entry, msg.colors)
    pd.modified()
    applyStyle(msg.name)
    applyMatrix(msg.name)
  }

  function copyMesh(msg) {
    // The geometry the browser already has for `source`; the typed arrays are
    // shared (setMesh replaces arrays, never writes into them).
    const src = actors.get(msg.source)
    if (src == null) {
      return
    }
    const entry = meshEntry(msg.name)
    const from = src.polydata
    const pd = entry.polydata
    pd.getPoints().setData(from.getPoints().getData(), 3)
    pd.getPolys().setData(from.getPolys().getData())
    const normals = from.getPointData().getNormals()
    pd.getPointData().setNormals(normals == null ? null : vtk.Common.Core.vtkDataArray.newInstance({
      name: "normals", numberOfComponents: 3, values: normals.getData(),
    }))
    entry.nPoints = src.nPoints
    setColors(entry, null)
    pd.modified()
    applyStyle(msg.name)
    applyMatrix(msg.name)
  }

  function removeMesh(name) {
    const entry = actors.get(name)
    if (entry == null) {
      return
    }
    renderer.removeActor(entry.actor)
    entry.actor.delete()
    entry.mapper.delete()
    entry.polydata.delete()
    actors.delete(name)
  }

  // --- overlays -----------------------------------------------------------

  function removeLine(name) {
    const item = lineActors.get(name)
    item.renderer.removeActor(item.actor)
    item.actor.delete()
    item.mapper.delete()
    item.polydata.delete()
    lineActors.delete(name)
  }

  function syncLines() {
    // Lines move with every change: their points are updated in place, as a
    // new actor costs vtk.js a new view node and shader set-up.
    const specs = model.lines || {}
    for (const name of [...lineActors.keys()]) {
      if (!(name in specs)) {
        removeLine(name)
      }
    }
    for (const [name, spec] of Object.entries(specs)) {
      const pts = Float32Array.from((spec.points || []).flat().map(Number))
      const n = pts.length / 3
      const target = spec.on_top === false ? renderer : topRenderer
      let item = lineActors.get(name)
      if (item != null && (n < 2 || item.renderer !== target)) {
        removeLine(name)
        item = null
      }
      if (n < 2) {
        continue
      }
      if (item == null) {
        const polydata = vtk.Common.DataModel.vtkPolyData.newInstance()
        const mapper = vtk.Rendering.Core.vtkMapper.newInstance()
        mapper.setInputData(polydata)
        const actor = vtk.Rendering.Core.vtkActor.newInstance()
        actor.setMapper(mapper)
        actor.getProperty().setLighting(false)
        target.addActor(actor)
        item = {actor, mapper, polydata, renderer: target, n: 0}
        lineActors.set(name, item)
      }
      const pd = item.polydata
      pd.getPoints().setData(pts, 3)
      if (item.n !== n) {
        const cells = new Uint32Array(n + 1)
        cells[0] = n
        for (let i = 0; i < n; i++) {
          cells[i + 1] = i
        }
        pd.getLines().setData(cells)
        item.n = n
      }
      pd.modified()
      const prop = item.actor.getProperty()
      prop.setColor(...hexToRgb(spec.color, [0.84, 0.15, 0.16]))
      prop.setLineWidth(Number(spec.width || 3))
      const m = spec.actor == null ? null : colMajor((model.matrices || {})[spec.actor])
      item.actor.setUserMatrix(m == null ? IDENTITY : m)
      item.spec = spec
    }
  }

  function syncLabels() {
    const specs = model.show_labels ? (model.labels || {}) : {}
    for (const [name, div] of labelDivs) {
      if (!(name in specs)) {
        div.remove()
        labelDivs.delete(name)
      }
    }
    for (const [name, spec] of Object.entries(specs)) {
      let div = labelDivs.get(name)
      if (div == null) {
        div = document.createElement("div")
        div.style.cssText = (
          "position:absolute;left:0;top:0;white-space:nowrap;font:12px sans-serif;" +
          "padding:1px 4px;border-radius:3px;background:rgba(255,255,255,0.75);"
        )
        div.className = "hv-label"
        labelLayer.append(div)
        labelDivs.set(name, div)
      }
      div.textContent = spec.text == null ? name : String(spec.text)
      div.style.color = spec.color || "#222222"
    }
  }

  function labelScreenPositions() {
    // CSS pixel position of every label anchor, or null when off-screen/behind.
    const rect = host.getBoundingClientRect()
    const aspect = rect.width / Math.max(rect.height, 1)
    const out = new Map()
    const specs = model.labels || {}
    for (const name of labelDivs.keys()) {
      const spec = specs[name]
      if (spec == null || spec.position == null) {
        continue
      }
      let p = spec.position.map(Number)
      if (spec.actor != null) {
        p = applyRowMajor((model.matrices || {})[spec.actor], p)
      }
      const nd = renderer.worldToNormalizedDisplay(p[0], p[1], p[2], aspect)
      const inside = nd[2] >= 0 && nd[2] <= 1 && nd[0] >= 0 && nd[0] <= 1 && nd[1] >= 0 && nd[1] <= 1
      out.set(name, inside ? [nd[0] * rect.width, (1 - nd[1]) * rect.height] : null)
    }
    return out
  }

  function placeLabels() {
    if (labelDivs.size === 0) {
      return
    }
    const shown = []
    for (const [name, xy] of labelScreenPositions()) {
      const div = labelDivs.get(name)
      if (xy == null) {
        div.style.display = "none"
      } else {
        div.style.display = ""
        shown.push({div, x: xy[0], y: xy[1], w: div.offsetWidth, h: div.offsetHeight})
      }
    }
    for (const item of spreadLabels(shown, host.getBoundingClientRect().width)) {
      item.div.style.left = `${item.left}px`
      item.div.style.top = `${item.top}px`
      item.div.dataset.anchor = `${item.x.toFixed(1)},${item.y.toFixed(1)}`
    }
    drawLeaders(leaderLayer, shown)
  }

  // --- camera -------------------------------------------------------------

  function visibleBounds() {
    const b = [Infinity, -Infinity, Infinity, -Infinity, Infinity, -Infinity]
    for (const {actor} of actors.values()) {
      if (!actor.getVisibility()) {
        continue
      }
      const ab = actor.getBounds()
      for (let i = 0; i < 6; i += 2) {
        b[i] = Math.min(b[i], ab[i])
        b[i + 1] = Math.max(b[i + 1], ab[i + 1])
      }
    }
    return Number.isFinite(b[0]) ? b : null
  }

  function applyView() {
    const bounds = visibleBounds()
    if (bounds == null) {
      return
    }
    const cam = renderer.getActiveCamera()
    const {dir, up} = presetDirection(model.view, model.side)
    const center = [0, 2, 4].map((i) => (bounds[i] + bounds[i + 1]) / 2)
    const fp = model.focal_point == null ? center : model.focal_point.map(Number)
    // What to fit in view: a box about `fp`, of the given radius or holding the meshes.
    const fit = []
    for (let i = 0; i < 3; i++) {
      const half = model.view_radius_mm != null
        ? Number(model.view_radius_mm)
        : Math.max(bounds[2 * i + 1] - fp[i], fp[i] - bounds[2 * i])
      fit.push(fp[i] - half, fp[i] + half)
    }
    cam.setFocalPoint(...fp)
    cam.setPosition(fp[0] + dir[0], fp[1] + dir[1], fp[2] + dir[2])
    cam.setViewUp(...up)
    renderer.resetCamera(fit)
    cameraSet = true
  }

  // --- screenshot ---------------------------------------------------------

  async function screenshot(id) {
    try {
      const promise = glWindow.captureNextImage("image/png")
      renderWindow.render()
      let url = await promise
      if (model.show_labels && labelDivs.size > 0) {
        url = await withLabels(url)
      }
      model.send_msg({type: "screenshot", id, png: url.slice(url.indexOf(",") + 1)})
    } catch (err) {
      model.send_msg({type: "screenshot", id, error: String(err)})
    }
  }

  async function withLabels(url) {
    // Draw the labels into the picture, as they are HTML over the canvas.
    const img = new Image()
    img.src = url
    await img.decode()
    const canvas = document.createElement("canvas")
    canvas.width = img.width
    canvas.height = img.height
    const ctx = canvas.getContext("2d")
    ctx.drawImage(img, 0, 0)
    const rect = host.getBoundingClientRect()
    const s = img.width / Math.max(rect.width, 1)
    ctx.font = `${Math.round(12 * s)}px sans-serif`
    ctx.textBaseline = "middle"
    const specs = model.labels || {}
    for (const [name, div] of labelDivs) {
      if (div.style.display === "none" || specs[name] == null) {
        continue
      }
      // where placeLabels put it (spread apart from the others)
      const spec = specs[name]
      const text = spec.text == null ? name : String(spec.text)
      const x = parseFloat(div.style.left) * s
      const y = (parseFloat(div.style.top) + div.offsetHeight / 2) * s
      const w = ctx.measureText(text).width + 8 * s
      ctx.fillStyle = "rgba(255,255,255,0.75)"
      ctx.fillRect(x, y - 8 * s, w, 16 * s)
      ctx.fillStyle = spec.color || "#222222"
      ctx.fillText(text, x + 4 * s, y)
    }
    return canvas.toDataURL("image/png")
  }

  // --- wiring -------------------------------------------------------------

  model.on("msg:custom", (msg) => {
    const recv = performance.now()
    switch (msg.type) {
      case "mesh":
        setMesh(msg)
        pendingEvents.push({kind: "mesh", recv})
        return  // drawn with the rest of its batch, on "synced"
      case "copy":
        copyMesh(msg)
        pendingEvents.push({kind: "copy", recv})
        return
      case "colors": {
        const entry = actors.get(msg.name)
        if (entry != null) {
          setColors(entry, msg.colors)
          applyStyle(msg.name)
        }
        break
      }
      case "remove":
        removeMesh(msg.name)
        break
      case "synced":
        if (!cameraSet) {
          applyView()
        }
        break
      case "reset_camera":
        applyView()
        break
      case "screenshot":
        screenshot(msg.id)
        return
      default:
        return
    }
    requestRender(msg.type, recv)
  })

  model.on("matrices", () => {
    const recv = performance.now()
    for (const name of actors.keys()) {
      applyMatrix(name)
    }
    if ([...lineActors.values()].some((item) => item.spec.actor != null)) {
      syncLines()
    }
    requestRender("matrices", recv)
  })
  model.on("actors", () => {
    for (const name of actors.keys()) {
      applyStyle(name)
    }
    requestRender("actors")
  })
  model.on("lines", () => {
    syncLines()
    requestRender("lines")
  })
  model.on(["labels", "show_labels"], () => {
    syncLabels()
    requestRender("labels")
  })
  model.on(["view", "side", "focal_point", "view_radius_mm"], () => {
    applyView()
    requestRender("view")
  })
  model.on("background_color", () => {
    renderer.setBackground(...hexToRgb(model.background_color, [1, 1, 1]))
    requestRender("background")
  })

  const camera = renderer.getActiveCamera()
  // The camera goes to Python once it rests, not on every step of a drag.
  let cameraTimer = null
  function sendCamera() {
    cameraTimer = null
    if (destroyed) {
      return
    }
    model.send_msg({
      type: "camera",
      position: [...camera.getPosition()],
      focal_point: [...camera.getFocalPoint()],
      view_up: [...camera.getViewUp()],
      view_angle: camera.getViewAngle(),
    })
  }
  const camSub = camera.onModified(() => {
    if (!framePending) {
      requestAnimationFrame(placeLabels)
    }
    clearTimeout(cameraTimer)
    cameraTimer = setTimeout(sendCamera, 300)
  })
  const observer = new ResizeObserver(resize)
  const link = linkCamera(model, camera, () => requestRender())
  if (link.adopted()) {
    cameraSet = true  // turned as the view it joined, not to the preset
  }
  model.on("caption", () => showCaption(caption, model.caption))

  let attached = false
  model.on("after_layout", () => {
    if (!attached) {
      attached = true
      grw.setContainer(host)
      observer.observe(host)
    }
    resize()
  })
  model.on("remove", () => {
    destroyed = true
    clearTimeout(cameraTimer)
    observer.disconnect()
    camSub.unsubscribe()
    link.dispose()
    for (const name of [...actors.keys()]) {
      removeMesh(name)
    }
    for (const name of [...lineActors.keys()]) {
      removeLine(name)
    }
    grw.getInteractor().unbindEvents()
    topRenderer.delete()
    grw.delete()
  })

  syncLines()
  syncLabels()
  // Ask Python for the meshes; it answers with one "mesh" per actor, then "synced".
  const asking = askForMeshes(model)
  model.on("remove", asking.stop)
  return root
}
